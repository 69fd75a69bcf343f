-- Roles for Lodestone: the owner runs migrations; the app role owns nothing and cannot
-- bypass row-level security. Passwords come from the compose environment in production.
CREATE ROLE lodestone_owner LOGIN PASSWORD 'owner-change-me' NOSUPERUSER NOBYPASSRLS;
CREATE ROLE lodestone_app LOGIN PASSWORD 'app-change-me' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE lodestone OWNER lodestone_owner;
\connect lodestone
ALTER SCHEMA public OWNER TO lodestone_owner;
GRANT USAGE ON SCHEMA public TO lodestone_app;
