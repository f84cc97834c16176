"""Fleets: one command over many databases (an environment's ``fleet:`` in dbops.yaml).

targets (who: a list, a file, a discovery query; --targets), shard (--shard K/N), rollout
(waves), runner (a thread pool bounded by --jobs, each target running the per-database
operation), retry (--retry-failed, from the operation log), command (the task's entry).
"""
