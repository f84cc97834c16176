"""The application's objects: one table of PostgreSQL's object kinds and the catalog query of each.

"The application's" means: in a user schema (not pg_catalog, information_schema, pg_toast or a
temporary schema), not a member of an extension (pg_depend deptype 'e'), not made implicitly
for another object (deptype 'i': a range type's constructor functions, an array type), and,
for the kinds that live outside schemas, not the system's own (oid below FirstNormalObjectId).
Status counts, backup contents and the drop-everything program (dbops.schema.drop) all read
this table, so they cannot disagree on what the application holds; a schema snapshot can
select its objects from it too (``objects_sql`` of the kinds it compares).

Each kind says where it lives: ``schema`` (dropped on its own, by ``drop``'s keyword),
``database`` (outside schemas: casts, event triggers, publications ...), or ``part`` (goes with
the object it belongs to: a table's indexes, constraints, triggers, rules, policies, a
partition with its parent, an owned sequence with its column, a multirange with its range).
yoyo's and dbops' bookkeeping tables (and their parts) are flagged ``bookkeeping``: status
leaves them out, backups and drops do not.

Every query row is ``(kind, classid, objid, schema, name, relid, bookkeeping)``; ``relid`` is
the table a part belongs to (or the relation itself). The SQL holds no ``%``, so it can sit in
queries that run with parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dbops.migrations.files import YOYO_TABLES

if TYPE_CHECKING:
    import psycopg

FIRST_NORMAL_OID = 16384  # PostgreSQL's FirstNormalObjectId: below it, initdb made the object

USER_NAMESPACE = (
    "{n}.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND {n}.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
)


def _not_member(catalog: str, oid: str, deptypes: str = "'e'") -> str:
    return (
        f"NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = '{catalog}'::regclass"
        f" AND d.objid = {oid} AND d.deptype IN ({deptypes}))"
    )


Scope = Literal["schema", "database", "part"]


@dataclass(frozen=True)
class Kind:
    name: str  # the key in counts, manifests and JSON: "tables", "enum_types"
    title: str  # as reports show it: "Tables", "Enum types"
    scope: Scope
    drop: str | None  # the DROP statement's object keyword, for kinds dropped on their own
    select: str  # SELECT classid, objid, schema, name, relid FROM ... (the application's only)


def _relation(relkinds: str, extra: str = "") -> str:
    return (
        "SELECT 'pg_class'::regclass, c.oid, c.nspname, c.relname::text, c.oid FROM rel c"
        f" WHERE c.relkind IN ({relkinds}){extra}"
    )


_OWNED_SEQUENCE = (
    "EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
    " AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))"
)


_MEMBER_OR_IMPLICIT = "'e', 'i'"


def _routine(prokind: str) -> str:
    return (
        "SELECT 'pg_proc'::regclass, p.oid, n.nspname,"
        " p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL::oid"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        f" WHERE p.prokind = '{prokind}' AND {USER_NAMESPACE.format(n='n')}"
        f" AND {_not_member('pg_proc', 'p.oid', _MEMBER_OR_IMPLICIT)}"
    )


def _type(condition: str, deptypes: str = _MEMBER_OR_IMPLICIT) -> str:
    return (
        "SELECT 'pg_type'::regclass, t.oid, n.nspname, t.typname::text, NULL::oid"
        " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        f" WHERE {condition} AND {USER_NAMESPACE.format(n='n')}"
        f" AND {_not_member('pg_type', 't.oid', deptypes)}"
    )


def _in_schema(catalog: str, name: str, namespace: str, label: str | None = None) -> str:
    """An object of `catalog` that lives in a schema: its name column and its namespace column."""
    return (
        f"SELECT '{catalog}'::regclass, x.oid, n.nspname, {label or f'x.{name}::text'}, NULL::oid"
        f" FROM {catalog} x JOIN pg_namespace n ON n.oid = x.{namespace}"
        f" WHERE {USER_NAMESPACE.format(n='n')} AND {_not_member(catalog, 'x.oid')}"
    )


def _global(catalog: str, label: str, *, where: str = "") -> str:
    """An object outside schemas; initdb's own (oid below 16384) are left out."""
    where += f"x.oid >= {FIRST_NORMAL_OID} AND "
    return (
        f"SELECT '{catalog}'::regclass, x.oid, NULL::name, {label}, NULL::oid FROM {catalog} x"
        f" WHERE {where}{_not_member(catalog, 'x.oid', _MEMBER_OR_IMPLICIT)}"
    )


def _part(catalog: str, key: str, label: str, where: str = "true") -> str:
    """An object that belongs to an application relation (`key` names that relation)."""
    return (
        f"SELECT '{catalog}'::regclass, x.oid, c.nspname, {label} || ' on ' || c.relname, c.oid"
        f" FROM {catalog} x JOIN rel c ON c.oid = x.{key} WHERE {where}"
    )


KINDS: tuple[Kind, ...] = (
    # relations
    Kind("tables", "Tables", "schema", "TABLE", _relation("'r'", " AND NOT c.relispartition")),
    Kind(
        "partitioned_tables",
        "Partitioned tables",
        "schema",
        "TABLE",
        _relation("'p'", " AND NOT c.relispartition"),
    ),
    Kind("partitions", "Partitions", "part", None, _relation("'r', 'p', 'f'", " AND c.relispartition")),
    Kind(
        "foreign_tables",
        "Foreign tables",
        "schema",
        "FOREIGN TABLE",
        _relation("'f'", " AND NOT c.relispartition"),
    ),
    Kind("views", "Views", "schema", "VIEW", _relation("'v'")),
    Kind("materialized_views", "Materialized views", "schema", "MATERIALIZED VIEW", _relation("'m'")),
    Kind("sequences", "Sequences", "schema", "SEQUENCE", _relation("'S'", f" AND NOT {_OWNED_SEQUENCE}")),
    Kind("owned_sequences", "Owned sequences", "part", None, _relation("'S'", f" AND {_OWNED_SEQUENCE}")),
    # a table's parts (partitions' own included, as pg_dump writes them)
    Kind(
        "indexes",
        "Indexes",
        "part",
        None,
        "SELECT 'pg_class'::regclass, i.oid, c.nspname, i.relname::text, c.oid"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN rel c ON c.oid = x.indrelid",
    ),
    Kind(
        "constraints",
        "Constraints",
        "part",
        None,
        _part("pg_constraint", "conrelid", "x.conname", "x.contype <> 'n'"),
    ),
    Kind(
        "triggers", "Triggers", "part", None, _part("pg_trigger", "tgrelid", "x.tgname", "NOT x.tgisinternal")
    ),
    Kind(
        "rules",
        "Rules",
        "part",
        None,
        _part("pg_rewrite", "ev_class", "x.rulename", "x.rulename <> '_RETURN'"),
    ),
    Kind("policies", "Policies", "part", None, _part("pg_policy", "polrelid", "x.polname")),
    Kind(
        "row_security",
        "Tables with row security",
        "part",
        None,
        _relation("'r', 'p'", " AND (c.relrowsecurity OR c.relforcerowsecurity)"),
    ),
    Kind(
        "statistics", "Statistics objects", "part", None, _part("pg_statistic_ext", "stxrelid", "x.stxname")
    ),
    # routines
    Kind("functions", "Functions", "schema", "ROUTINE", _routine("f")),
    Kind("procedures", "Procedures", "schema", "ROUTINE", _routine("p")),
    Kind("aggregates", "Aggregates", "schema", "ROUTINE", _routine("a")),
    Kind("window_functions", "Window functions", "schema", "ROUTINE", _routine("w")),
    Kind(
        "operators", "Operators", "schema", "OPERATOR", _in_schema("pg_operator", "oprname", "oprnamespace")
    ),
    Kind(
        "operator_classes",
        "Operator classes",
        "schema",
        "OPERATOR CLASS",
        _in_schema("pg_opclass", "opcname", "opcnamespace"),
    ),
    Kind(
        "operator_families",
        "Operator families",
        "schema",
        "OPERATOR FAMILY",
        _in_schema("pg_opfamily", "opfname", "opfnamespace"),
    ),
    # types
    Kind("enum_types", "Enum types", "schema", "TYPE", _type("t.typtype = 'e'")),
    Kind("range_types", "Range types", "schema", "TYPE", _type("t.typtype = 'r'")),
    Kind("multirange_types", "Multirange types", "part", None, _type("t.typtype = 'm'", "'e'")),
    Kind("domains", "Domains", "schema", "DOMAIN", _type("t.typtype = 'd'")),
    Kind(
        "composite_types",
        "Composite types",
        "schema",
        "TYPE",
        _type("t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'"),
    ),
    Kind("base_types", "Base types", "schema", "TYPE", _type("t.typtype = 'b'")),
    # other objects in schemas
    Kind(
        "collations",
        "Collations",
        "schema",
        "COLLATION",
        _in_schema("pg_collation", "collname", "collnamespace"),
    ),
    Kind(
        "text_search_configurations",
        "Text search configurations",
        "schema",
        "TEXT SEARCH CONFIGURATION",
        _in_schema("pg_ts_config", "cfgname", "cfgnamespace"),
    ),
    Kind(
        "text_search_dictionaries",
        "Text search dictionaries",
        "schema",
        "TEXT SEARCH DICTIONARY",
        _in_schema("pg_ts_dict", "dictname", "dictnamespace"),
    ),
    Kind(
        "text_search_parsers",
        "Text search parsers",
        "schema",
        "TEXT SEARCH PARSER",
        _in_schema("pg_ts_parser", "prsname", "prsnamespace"),
    ),
    Kind(
        "text_search_templates",
        "Text search templates",
        "schema",
        "TEXT SEARCH TEMPLATE",
        _in_schema("pg_ts_template", "tmplname", "tmplnamespace"),
    ),
    Kind(
        "conversions",
        "Conversions",
        "schema",
        "CONVERSION",
        _in_schema("pg_conversion", "conname", "connamespace"),
    ),
    # outside schemas
    Kind(
        "schemas",
        "Schemas",
        "database",
        "SCHEMA",
        "SELECT 'pg_namespace'::regclass, n.oid, n.nspname, n.nspname::text, NULL::oid FROM pg_namespace n"
        f" WHERE {USER_NAMESPACE.format(n='n')} AND {_not_member('pg_namespace', 'n.oid')}",
    ),
    Kind(
        "extensions",
        "Extensions",
        "database",
        "EXTENSION",
        _global(
            "pg_extension",
            "x.extname || ' ' || x.extversion",
            where="x.extname <> 'plpgsql' AND ",  # the drop program is written in it
        ),
    ),
    Kind(
        "casts",
        "Casts",
        "database",
        "CAST",
        _global("pg_cast", "format_type(x.castsource, NULL) || ' AS ' || format_type(x.casttarget, NULL)"),
    ),
    Kind(
        "event_triggers",
        "Event triggers",
        "database",
        "EVENT TRIGGER",
        _global("pg_event_trigger", "x.evtname::text"),
    ),
    Kind(
        "publications",
        "Publications",
        "database",
        "PUBLICATION",
        _global("pg_publication", "x.pubname::text"),
    ),
    Kind(
        "foreign_data_wrappers",
        "Foreign-data wrappers",
        "database",
        "FOREIGN DATA WRAPPER",
        _global("pg_foreign_data_wrapper", "x.fdwname::text"),
    ),
    Kind(
        "foreign_servers",
        "Foreign servers",
        "database",
        "SERVER",
        _global("pg_foreign_server", "x.srvname::text"),
    ),
    Kind("languages", "Languages", "database", "LANGUAGE", _global("pg_language", "x.lanname::text")),
    Kind("access_methods", "Access methods", "database", "ACCESS METHOD", _global("pg_am", "x.amname::text")),
    Kind(
        "large_objects",
        "Large objects",
        "database",
        None,  # lo_unlink, by the drop program
        "SELECT 'pg_largeobject'::regclass, x.oid, NULL::name, x.oid::text, NULL::oid"
        " FROM pg_largeobject_metadata x",
    ),
    Kind(
        "default_privileges",
        "Default privileges",
        "database",
        None,  # revoked back to PostgreSQL's defaults, by the drop program
        "SELECT 'pg_default_acl'::regclass, x.oid, NULL::name, x.defaclrole::regrole::text || ' on '"
        " || CASE x.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'"
        " WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE 'large objects' END"
        " || coalesce(' in schema ' || n.nspname, ''), NULL::oid"
        " FROM pg_default_acl x LEFT JOIN pg_namespace n ON n.oid = x.defaclnamespace",
    ),
)
BY_NAME = {kind.name: kind for kind in KINDS}
# counted on the objects above, not objects of their own
DERIVED = (("grants", "Grants"), ("comments", "Comments"))
TITLES = {kind.name: kind.title for kind in KINDS} | dict(DERIVED)

_BOOKKEEPING = (
    "(SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname IN ("
    + ", ".join(f"'{name}'" for name in YOYO_TABLES)
    + "))"
)

# The relations of user schemas not owned by an extension, with their schema's name.
_REL = (
    "SELECT c.oid, c.relkind, c.relname, c.relispartition, c.relrowsecurity, c.relforcerowsecurity, n.nspname"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE {USER_NAMESPACE.format(n='n')} AND {_not_member('pg_class', 'c.oid')}"
)

# An object's ACL and its baseline, by its catalog: the privileges initdb gave it (public's,
# in pg_init_privs), else PostgreSQL's built-in default. A grant is an entry where the two
# differ (either way: a REVOKE from PUBLIC counts too), as pg_dump sees it: an ACL set
# explicitly to the default is no grant.
_ACL = """(
  SELECT relacl, acldefault(CASE relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", relowner) FROM pg_class
    WHERE o.classid = 'pg_class'::regclass AND oid = o.objid
  UNION ALL SELECT proacl, acldefault('f', proowner) FROM pg_proc
    WHERE o.classid = 'pg_proc'::regclass AND oid = o.objid
  UNION ALL SELECT typacl, acldefault('T', typowner) FROM pg_type
    WHERE o.classid = 'pg_type'::regclass AND oid = o.objid
  UNION ALL SELECT nspacl, acldefault('n', nspowner) FROM pg_namespace
    WHERE o.classid = 'pg_namespace'::regclass AND oid = o.objid
  UNION ALL SELECT lomacl, acldefault('L', lomowner) FROM pg_largeobject_metadata
    WHERE o.classid = 'pg_largeobject'::regclass AND oid = o.objid
  UNION ALL SELECT srvacl, acldefault('S', srvowner) FROM pg_foreign_server
    WHERE o.classid = 'pg_foreign_server'::regclass AND oid = o.objid
  UNION ALL SELECT fdwacl, acldefault('F', fdwowner) FROM pg_foreign_data_wrapper
    WHERE o.classid = 'pg_foreign_data_wrapper'::regclass AND oid = o.objid
  UNION ALL SELECT lanacl, acldefault('l', lanowner) FROM pg_language
    WHERE o.classid = 'pg_language'::regclass AND oid = o.objid
) acl(granted, builtin)
LEFT JOIN pg_init_privs ip ON ip.classoid = o.classid AND ip.objoid = o.objid AND ip.objsubid = 0
CROSS JOIN LATERAL (SELECT coalesce(ip.initprivs, acl.builtin)) base(acl)
CROSS JOIN LATERAL (
  (SELECT * FROM aclexplode(acl.granted) EXCEPT SELECT * FROM aclexplode(base.acl))
  UNION ALL (SELECT * FROM aclexplode(base.acl) EXCEPT SELECT * FROM aclexplode(acl.granted))
) a"""


def objects_sql(kinds: tuple[Kind, ...] = KINDS) -> str:
    """One query over the chosen kinds, rows ``(kind, classid, objid, schema, name, relid,
    bookkeeping)``; the whole table also gives the derived grants and comments rows."""
    union = "\nUNION ALL ".join(
        f"SELECT '{k.name}'::text AS kind, q.* FROM ({k.select}) q(classid, objid, schema, name, relid)"
        for k in kinds
    )
    body = f"""WITH rel AS MATERIALIZED ({_REL}),
objects AS MATERIALIZED ({union})
SELECT o.kind, o.classid::oid, o.objid, o.schema::text, o.name, o.relid,
       coalesce(o.relid IN {_BOOKKEEPING}, false) AS bookkeeping
FROM objects o"""
    if kinds != KINDS:
        return body
    return f"""{body}
UNION ALL
SELECT 'grants', o.classid, o.objid, o.schema, o.name, o.relid, coalesce(o.relid IN {_BOOKKEEPING}, false)
FROM objects o CROSS JOIN LATERAL {_ACL}
WHERE o.kind NOT IN ('row_security', 'indexes') AND acl.granted IS NOT NULL
UNION ALL
SELECT 'grants', o.classid, o.objid, o.schema, o.name || '.' || a.attname, o.relid,
       coalesce(o.relid IN {_BOOKKEEPING}, false)
FROM objects o JOIN pg_attribute a ON a.attrelid = o.objid AND a.attnum > 0 AND a.attacl IS NOT NULL
CROSS JOIN LATERAL aclexplode(a.attacl) g
WHERE o.classid = 'pg_class'::regclass AND o.kind NOT IN ('row_security', 'indexes')
UNION ALL
SELECT 'comments', o.classid, o.objid, o.schema, o.name, o.relid, coalesce(o.relid IN {_BOOKKEEPING}, false)
FROM objects o JOIN pg_description d ON d.classoid = o.classid AND d.objoid = o.objid
WHERE o.kind <> 'row_security'  -- and not initdb's on public (pg_dump leaves it out too)
  AND NOT (o.kind = 'schemas' AND o.name = 'public' AND d.description = 'standard public schema')"""


OBJECTS_SQL = objects_sql()


@dataclass(frozen=True)
class AppObject:
    kind: str
    classid: int
    objid: int
    schema: str | None
    name: str
    relid: int | None
    bookkeeping: bool

    @property
    def shown(self) -> str:
        """The name as reports show it: bare in public, else schema-qualified."""
        if self.schema in (None, "public") or self.kind == "schemas":
            return self.name
        return f"{self.schema}.{self.name}"


def objects(conn: psycopg.Connection[Any], kinds: tuple[Kind, ...] = KINDS) -> list[AppObject]:
    """The application's objects of `kinds`, in one query, ordered by kind then schema and name."""
    rows = fetch(conn, objects_sql(kinds) + "\nORDER BY 1, 4, 5")
    return [AppObject(*row) for row in rows]


def counts(conn: psycopg.Connection[Any], *, bookkeeping: bool = True) -> dict[str, int]:
    """How many of each kind (every kind, 0 included; grants and comments too); without
    `bookkeeping`, yoyo's and dbops' own tables and their parts are left out."""
    return all_kinds(fetch(conn, counts_sql(bookkeeping=bookkeeping)))


def counts_sql(*, bookkeeping: bool = True) -> str:
    """The query of counts(), rows (kind, count), for a caller that pipelines it (run it
    without JIT, as fetch() does)."""
    where = "" if bookkeeping else " WHERE NOT bookkeeping"
    return f"SELECT kind, count(*) FROM ({OBJECTS_SQL}) a{where} GROUP BY kind"


def all_kinds(rows: list[Any]) -> dict[str, int]:
    """counts_sql()'s rows -> every kind's count, 0 included."""
    found = dict(rows)
    return {name: found.get(name, 0) for name in TITLES}


def fetch(conn: psycopg.Connection[Any], query: str) -> list[Any]:
    """The rows of a query over the catalog, without JIT: the union of every kind looks costly
    to the planner, and compiling it would take half a second for a few milliseconds of work
    (SET LOCAL: for the rest of the caller's transaction, if one is open, else for this one)."""
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")
        return conn.execute(query).fetchall()
