"""The served model: the BentoML service, its request checks, and safe rollout."""
