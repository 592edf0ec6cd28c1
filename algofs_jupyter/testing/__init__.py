"""Real services started for tests and benches (never mocks): a supervised child process helper and a
local SeaweedFS S3 server. Only ever bound to 127.0.0.1."""
