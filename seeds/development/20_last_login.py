"""A custom seed (the spec's seed(db)): mark the demo admin as active today, in development."""


def seed(db):
    db.execute("UPDATE users SET updated_at = now() WHERE email = %s", ("admin@exfabrica.com",))
