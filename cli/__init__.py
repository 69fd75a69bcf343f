"""Floor 1: the `lodestone` command (api, worker, migrate, dev, demo, token, tenant) and the
operator's `lodestone ops` commands. It may import every floor below; nothing imports it.
The dev commands import devstack/ only when run, so `lodestone api` and `lodestone worker`
start without the dev extra."""
