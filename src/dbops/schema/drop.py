"""Drop everything of the application's: the one program ``reset`` and ``restore --in-place`` run.

It is a single ``DO`` block (psql runs it in the in-place restore's transaction, reset on its
own connection), built from the object kinds of dbops.schema.catalog:

- event triggers first (they would fire on every drop that follows), then publications;
- extensions (``DROP EXTENSION`` takes its members with it: they are never dropped one by one),
  unless the caller keeps them, as reset does;
- every schema but ``public`` (and, when extensions stay, the schemas they live in), with
  CASCADE: its objects go with it. ``public`` itself stays as it was: owner, grants, comment;
- then, in the schemas that stay, each object of each kind that is dropped on its own, with
  CASCADE: views, tables (a partitioned table's partitions go with it), sequences (not a
  column's own), routines, operators and their classes and families, types, collations,
  text search objects, conversions;
- then the kinds outside schemas: casts, foreign servers and wrappers, languages, access
  methods, large objects (``lo_unlink``), and default privileges, revoked back to PostgreSQL's
  own defaults (for the roles the current user is a member of).

The list of objects is read once, at the start; since CASCADE takes dependants along (an
aggregate with its state function, a view with its table), each object is looked up again just
before its statement, and its name is written by PostgreSQL (``pg_identify_object``): an object
already gone is skipped, and no OID is ever formatted into a statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbops.schema import catalog

if TYPE_CHECKING:
    import psycopg

# The kinds the program drops, in its order (the parts of a table go with the table).
DROP_ORDER = (
    "event_triggers",
    "publications",
    "extensions",
    "schemas",
    "materialized_views",
    "views",
    "foreign_tables",
    "partitioned_tables",
    "tables",
    "sequences",
    "aggregates",
    "window_functions",
    "procedures",
    "functions",
    "operators",
    "operator_classes",
    "operator_families",
    "domains",
    "composite_types",
    "enum_types",
    "range_types",
    "base_types",
    "collations",
    "text_search_configurations",
    "text_search_dictionaries",
    "text_search_parsers",
    "text_search_templates",
    "conversions",
    "casts",
    "foreign_servers",
    "foreign_data_wrappers",
    "languages",
    "access_methods",
    "large_objects",
    "default_privileges",
)
DROPPED_KINDS = tuple(catalog.BY_NAME[name] for name in DROP_ORDER)

_ORDER_VALUES = ", ".join(
    f"('{name}', {i}, '{catalog.BY_NAME[name].drop or ''}')" for i, name in enumerate(DROP_ORDER)
)

_PROGRAM = """
DO $dbops_drop$
DECLARE
  v_row record;
  v_grantee record;
  v_acl pg_default_acl;
  v_identity text;
  v_kept oid[] := ARRAY(SELECT oid FROM pg_namespace WHERE nspname = 'public'{kept_extra});
  v_alter text;
  v_objects text;
  v_jit text := current_setting('jit');
BEGIN
  PERFORM set_config('jit', 'off', true);  -- compiling the catalog query costs more than running it
  FOR v_row IN
    SELECT o.kind, o.classid, o.objid, k.keyword
    FROM ({objects}) o JOIN (VALUES {order}) k(kind, ord, keyword) ON k.kind = o.kind
    ORDER BY k.ord, o.schema, o.name
  LOOP
    IF v_row.kind = 'schemas' AND v_row.objid = ANY (v_kept) THEN
      CONTINUE;
    ELSIF v_row.kind = 'large_objects' THEN
      IF EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = v_row.objid) THEN
        PERFORM lo_unlink(v_row.objid);
      END IF;
    ELSIF v_row.kind = 'default_privileges' THEN
      SELECT * INTO v_acl FROM pg_default_acl WHERE oid = v_row.objid;
      IF NOT FOUND OR NOT pg_has_role(v_acl.defaclrole, 'MEMBER') THEN
        CONTINUE;  -- gone with its schema, or another role's to change
      END IF;
      v_alter := format('ALTER DEFAULT PRIVILEGES FOR ROLE %s', v_acl.defaclrole::regrole)
        || CASE WHEN v_acl.defaclnamespace <> 0
                THEN format(' IN SCHEMA %s', v_acl.defaclnamespace::regnamespace) ELSE '' END;
      v_objects := CASE v_acl.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                   WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS'
                   WHEN 'L' THEN 'LARGE OBJECTS' END;
      FOR v_grantee IN SELECT DISTINCT a.grantee FROM aclexplode(v_acl.defaclacl) a LOOP
        EXECUTE format('%s REVOKE ALL ON %s FROM %s', v_alter, v_objects,
                       CASE WHEN v_grantee.grantee = 0 THEN 'PUBLIC'
                            ELSE v_grantee.grantee::regrole::text END);
      END LOOP;
      IF v_acl.defaclnamespace = 0 THEN  -- back to the built-in defaults, which removes the entry
        EXECUTE format('%s GRANT ALL ON %s TO %s', v_alter, v_objects, v_acl.defaclrole::regrole);
        IF v_acl.defaclobjtype IN ('f', 'T') THEN
          EXECUTE format('%s GRANT ALL ON %s TO PUBLIC', v_alter, v_objects);
        END IF;
      END IF;
    ELSE
      SELECT i.identity INTO v_identity FROM pg_identify_object(v_row.classid, v_row.objid, 0) i;
      IF v_identity IS NOT NULL THEN  -- else it went with something dropped before it
        EXECUTE format('DROP %s IF EXISTS %s CASCADE', v_row.keyword, v_identity);
      END IF;
    END IF;
  END LOOP;
  PERFORM set_config('jit', v_jit, true);
END
$dbops_drop$;
"""


def program(*, keep_extensions: bool) -> str:
    """The DO block that drops everything of the application's; with `keep_extensions`, the
    extensions (and the schemas they live in) stay."""
    kinds = tuple(k for k in DROPPED_KINDS if not (keep_extensions and k.name == "extensions"))
    return _PROGRAM.format(
        kept_extra=" OR oid IN (SELECT extnamespace FROM pg_extension)" if keep_extensions else "",
        objects=catalog.objects_sql(kinds),
        order=_ORDER_VALUES,
    )


def plan(conn: psycopg.Connection[Any], *, keep_extensions: bool) -> list[catalog.AppObject]:
    """What the program would drop (what it reads first), in its order; the objects inside a
    schema that is dropped whole are listed too."""
    kinds = tuple(k for k in DROPPED_KINDS if not (keep_extensions and k.name == "extensions"))
    extra = " OR oid IN (SELECT extnamespace FROM pg_extension)" if keep_extensions else ""
    kept = {row[0] for row in conn.execute(f"SELECT oid FROM pg_namespace WHERE nspname = 'public'{extra}")}
    found = [o for o in catalog.objects(conn, kinds) if not (o.kind == "schemas" and o.objid in kept)]
    return sorted(found, key=lambda o: DROP_ORDER.index(o.kind))
