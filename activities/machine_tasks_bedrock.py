"""bedrock:invokeModel on the tenant's own models: the request Body in a model family's format
becomes a chat, and the answer comes back in that family's response format, as Bedrock's
InvokeModel returns it (Anthropic Messages, Amazon Titan Text, Meta Llama, Mistral, Cohere).
The model that answers is the binding's, else the deployment's LLM_MODEL: ModelId names a
Bedrock model, which the tenant's provider does not serve."""

import json
from typing import Any

from activities.machine_tasks_shapes import task_failed
from lodestone.llm import Completion


def _text_of(content: Any) -> str:
    """Anthropic content: a string, or blocks of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
    raise task_failed("bedrock: a message's content is a string or a list of content blocks")


def _family(model_id: str) -> str:
    """anthropic for anthropic.claude-..., us.anthropic.claude-... (an inference profile) and
    arn:aws:bedrock:...:foundation-model/anthropic.claude-..."""
    parts = model_id.rsplit("/", 1)[-1].split(".")
    return parts[1] if len(parts) > 2 and parts[0] in ("us", "eu", "apac", "global") else parts[0]


def body_of(payload: Any) -> dict[str, Any]:
    body = payload.get("Body") if isinstance(payload, dict) else None
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as e:
            raise task_failed("bedrock: Body is not JSON") from e
    if not isinstance(body, dict):
        raise task_failed("bedrock: Parameters.Body is the model's request (an object)")
    return body


def bedrock_params(payload: Any) -> dict[str, Any]:
    """llm parameters (messages or prompt, system, max_tokens, temperature) from a Body."""
    body = body_of(payload)
    if "messages" in body:  # Anthropic Messages
        messages = [{"role": m.get("role"), "content": _text_of(m.get("content"))} for m in body["messages"]]
        params: dict[str, Any] = {"messages": messages}
        if "system" in body:
            params["system"] = _text_of(body["system"])
    elif "inputText" in body:  # Amazon Titan Text
        config = body.get("textGenerationConfig") or {}
        params = {"prompt": body["inputText"], "max_tokens": config.get("maxTokenCount")}
        params["temperature"] = config.get("temperature")
    elif "prompt" in body or "message" in body:  # Llama, Mistral, Claude text, Cohere
        params = {"prompt": body.get("prompt", body.get("message"))}
        params["max_tokens"] = next(
            (body[k] for k in ("max_tokens", "max_gen_len", "max_tokens_to_sample") if k in body), None
        )
    else:
        params = {"prompt": json.dumps(body)}
    if "temperature" in body:
        params["temperature"] = body["temperature"]
    if "max_tokens" in body and "max_tokens" not in params:
        params["max_tokens"] = body["max_tokens"]
    return {k: v for k, v in params.items() if v is not None}


def bedrock_body(payload: Any, completion: Completion, rid: str) -> dict[str, Any]:
    """The answer in the response format of the family the request was written for."""
    body = body_of(payload)
    model_id = str(payload.get("ModelId", "")) if isinstance(payload, dict) else ""
    text, tin, tout = completion.text, completion.tokens_in, completion.tokens_out
    if "messages" in body:
        return {
            "id": f"msg_{rid.replace('-', '')}",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": tin, "output_tokens": tout},
        }
    if "inputText" in body:
        return {
            "inputTextTokenCount": tin,
            "results": [{"tokenCount": tout, "outputText": text, "completionReason": "FINISH"}],
        }
    if "message" in body:
        return {"text": text, "generation_id": rid, "finish_reason": "COMPLETE"}
    family = _family(model_id)
    if family == "meta":
        return {"generation": text, "prompt_token_count": tin, "generation_token_count": tout, "stop_reason": "stop"}
    if family == "mistral":
        return {"outputs": [{"text": text, "stop_reason": "stop"}]}
    if family == "cohere":
        return {"generations": [{"id": rid, "text": text, "finish_reason": "COMPLETE"}], "prompt": body.get("prompt")}
    if family == "anthropic":
        return {"completion": text, "stop_reason": "stop_sequence", "stop": None}
    return {"text": text, "model": completion.model, "usage": {"input_tokens": tin, "output_tokens": tout}}
