"""A custom seed (the spec's seed(db)): show the CI key as used once, in development only."""

LAST_USED = "2025-10-01 09:00:00+00"


def seed(db):
    db.execute(
        "UPDATE api_keys SET last_used_at = %s WHERE prefix = 'efk_live_ci1' AND last_used_at IS DISTINCT FROM %s",
        (LAST_USED, LAST_USED),
    )
