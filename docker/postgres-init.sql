-- Prefect keeps its own database beside the registry's, on the same server.
CREATE DATABASE prefect;
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
\connect pemreg
CREATE EXTENSION IF NOT EXISTS pg_trgm;
