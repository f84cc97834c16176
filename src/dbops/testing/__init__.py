"""dbops for a project's own tests: a pytest plugin (dbops.testing.plugin, a pytest11 entry
point) that gives each test a migrated, seeded database cloned from a template
(dbops.testing.template)."""
