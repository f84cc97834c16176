"""Every object kind beyond tables, views, sequences and enums, read for validate in one query.

Schemas, extensions (with their versions), languages, access methods, functions, procedures,
aggregates, window functions, operators, operator classes and families, casts, base types,
composite types, domains, range types, collations, text-search configurations,
dictionaries, parsers and templates, conversions, statistics objects, triggers (with their
enabled state), rules, row-level security policies, event triggers, publications, foreign data
wrappers and servers, grants, default privileges and comments. Each is a :class:`Thing`: its
kind, its name, the table it belongs to, and the aspects compared, as PostgreSQL prints them
with ``search_path = public``.

What counts is what the one catalog (``catalog.py``) counts: user schemas, nothing an
extension owns (schema-less objects: created after initdb, ``oid >= 16384``), not yoyo's or
dbops' bookkeeping. Role names that differ between the scratch database and the live one by
construction are normalised: an object's owner is ``owner`` in grants and policies, and
default privileges of the role running validate name no role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dbops.schema.catalog import FIRST_NORMAL_OID, USER_NAMESPACE
from dbops.schema.introspect import YOYO_NAMES

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Kind:
    """How one kind is compared and named in messages."""

    name: str  # as in Difference.kind: 'function', 'trigger', 'grant', ...
    label: str  # the message's capitalised word: 'Function', 'Text search configuration'
    missing: Severity  # error when queries on it fail without it, else warning
    quoted: bool = True  # "Function 'f(integer)' missing"; False: "Grant on table t to r missing"
    shown: str | None = None  # the aspect a missing or unexpected one shows, e.g. a grant's privileges
    sql_aspects: tuple[str, ...] = ()  # compared as SQL, parsed (bodies, definitions)
    expression_aspects: tuple[str, ...] = ()  # compared as SQL expressions (defaults, USING)


# In report order. Errors: what queries fail on without it (spec: "something the migrations
# define is missing, so queries on it fail"); warnings: the rest. The README's table mirrors this.
KINDS: tuple[Kind, ...] = (
    Kind("schema", "Schema", "error"),
    Kind("extension", "Extension", "error"),
    Kind("language", "Language", "error"),
    Kind("access method", "Access method", "error"),
    Kind("function", "Function", "error", sql_aspects=("definition",)),
    Kind("procedure", "Procedure", "error", sql_aspects=("definition",)),
    Kind("aggregate", "Aggregate", "error"),
    Kind("window function", "Window function", "error", sql_aspects=("definition",)),
    Kind("operator", "Operator", "error"),
    Kind("operator class", "Operator class", "warning"),
    Kind("operator family", "Operator family", "warning"),
    Kind("cast", "Cast", "error"),
    Kind("base type", "Base type", "error"),
    Kind("composite type", "Composite type", "error"),
    Kind("domain", "Domain", "error", expression_aspects=("default",)),
    Kind("range type", "Range type", "error"),
    Kind("collation", "Collation", "error"),
    Kind("text search configuration", "Text search configuration", "error"),
    Kind("text search dictionary", "Text search dictionary", "error"),
    Kind("text search parser", "Text search parser", "error"),
    Kind("text search template", "Text search template", "error"),
    Kind("conversion", "Conversion", "warning"),
    Kind("foreign-data wrapper", "Foreign-data wrapper", "error"),
    Kind("foreign server", "Foreign server", "error"),
    Kind("statistics object", "Statistics object", "warning", sql_aspects=("definition",)),
    Kind("trigger", "Trigger", "warning", sql_aspects=("definition",)),
    Kind("rule", "Rule", "warning", sql_aspects=("definition",)),
    Kind("policy", "Policy", "warning", expression_aspects=("using", "with check")),
    Kind("event trigger", "Event trigger", "warning"),
    Kind("publication", "Publication", "warning"),
    Kind("grant", "Grant", "warning", quoted=False, shown="privileges"),
    Kind("default privileges", "Default privileges", "warning", quoted=False, shown="privileges"),
    Kind("comment", "Comment", "warning", quoted=False, shown="text"),
)
KIND = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class Thing:
    kind: str
    name: str  # schema-qualified outside public; functions with their argument types
    table: str | None  # the table a trigger, rule or policy is on
    aspects: tuple[tuple[str, str], ...]  # compared one by one, in this order
    description: str | None  # pg_describe_object: what comments and grants call it (they: None)
    parent: str | None  # the description of what it belongs to (a grant's table, a trigger's table)

    def aspect(self, name: str) -> str:
        return dict(self.aspects).get(name) or "none"


# --------------------------------------------------------------------------- the SQL

# What the application's is, as the one catalog of object kinds (schema/catalog.py) says.
_SYSTEM = "('pg_catalog', 'information_schema')"
_USER = USER_NAMESPACE.format(n="n")
_INITDB = FIRST_NORMAL_OID  # below it, initdb made the object


def _mine(catalog: str, oid: str) -> str:
    """Not a member of an extension, nor made along with another object (a range type's
    constructors and casts, an identity column's sequence)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend x_ WHERE x_.classid = '{catalog}'::regclass"
        f" AND x_.objid = {oid} AND x_.deptype IN ('e', 'i'))"
    )


def _q(schema: str, name: str) -> str:
    """The name as messages show it: bare in public, else schema.name."""
    return f"CASE WHEN {schema} = 'public' THEN {name}::text ELSE {schema} || '.' || {name} END"


def _desc(catalog: str, oid: str, sub: str = "0") -> str:
    return f"pg_describe_object('{catalog}'::regclass, {oid}, {sub})"


def _role(oid: str, owner: str) -> str:
    return (
        f"CASE WHEN {oid} = 0 THEN 'PUBLIC' WHEN {oid} = {owner} THEN 'owner'"
        f" ELSE pg_get_userbyid({oid})::text END"
    )


def _enabled(column: str) -> str:
    return (
        f"CASE {column} WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled'"
        " WHEN 'R' THEN 'enabled on replica only' ELSE 'enabled always' END"
    )


def _routines(version: int) -> str:
    body = "coalesce(pg_get_function_sqlbody(p.oid), p.prosrc)" if version >= 140000 else "p.prosrc"
    aggregate = """(SELECT concat_ws(', ', 'SFUNC = ' || a.aggtransfn::regproc,
          'STYPE = ' || format_type(a.aggtranstype, NULL),
          'FINALFUNC = ' || nullif(a.aggfinalfn, 0)::regproc,
          'COMBINEFUNC = ' || nullif(a.aggcombinefn, 0)::regproc, 'INITCOND = ' || a.agginitval,
          'MSFUNC = ' || nullif(a.aggmtransfn, 0)::regproc,
          'SORTOP = ' || nullif(a.aggsortop, 0)::regoperator,
          'KIND = ' || CASE a.aggkind WHEN 'n' THEN 'normal' WHEN 'o' THEN 'ordered-set'
                                     ELSE 'hypothetical' END)
          FROM pg_aggregate a WHERE a.aggfnoid = p.oid)"""
    return f"""
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function'
            ELSE 'function' END,
       p.oid::regprocedure::text, NULL,
       json_build_object(
         'arguments', pg_get_function_arguments(p.oid),
         'result', pg_get_function_result(p.oid),
         'language', l.lanname,
         'volatility', CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE'
                                         ELSE 'VOLATILE' END,
         'security', CASE WHEN p.prosecdef THEN 'SECURITY DEFINER' ELSE 'SECURITY INVOKER' END,
         'strictness', CASE WHEN p.proisstrict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END,
         'parallel', CASE p.proparallel WHEN 's' THEN 'PARALLEL SAFE' WHEN 'r' THEN 'PARALLEL RESTRICTED'
                                        ELSE 'PARALLEL UNSAFE' END,
         'leakproof', CASE WHEN p.proleakproof THEN 'LEAKPROOF' ELSE 'NOT LEAKPROOF' END,
         'settings', array_to_string(p.proconfig, ', '),
         'definition', CASE WHEN p.prokind = 'a' THEN {aggregate} ELSE {body} END),
       {_desc("pg_proc", "p.oid")}, NULL::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
 WHERE {_USER} AND {_mine("pg_proc", "p.oid")}"""


def _members(owner: str, oid: str, family: str) -> str:
    """The operators and support functions an operator class holds, or an operator family holds
    loose (added with ALTER OPERATOR FAMILY): each is compared with what it belongs to."""

    def belongs(catalog: str, member: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM pg_depend d"
            f" WHERE d.classid = '{catalog}'::regclass AND d.objid = {member}"
            f" AND d.refclassid = '{owner}'::regclass AND d.refobjid = {oid})"
        )

    return f"""
         'operators', (SELECT string_agg(o.amopstrategy || ' ' || o.amopopr::regoperator, ', '
                                         ORDER BY o.amopstrategy, o.amopopr::regoperator::text)
                         FROM pg_amop o WHERE o.amopfamily = {family} AND {belongs("pg_amop", "o.oid")}),
         'functions', (SELECT string_agg(p.amprocnum || ' ' || p.amproc::regprocedure, ', '
                                         ORDER BY p.amprocnum, p.amproc::regprocedure::text)
                         FROM pg_amproc p
                        WHERE p.amprocfamily = {family} AND {belongs("pg_amproc", "p.oid")})"""


_OPERATORS = f"""
SELECT 'operator', {_q("n.nspname", "o.oprname")}
         || '(' || coalesce(format_type(nullif(o.oprleft, 0), NULL), 'NONE')
         || ', ' || format_type(o.oprright, NULL) || ')', NULL,
       json_build_object('function', o.oprcode::regprocedure::text, 'result', format_type(o.oprresult, NULL),
         'commutator', nullif(o.oprcom, 0)::regoperator::text,
         'negator', nullif(o.oprnegate, 0)::regoperator::text,
         'restrict', nullif(o.oprrest, 0)::regproc::text, 'join', nullif(o.oprjoin, 0)::regproc::text,
         'hashes', o.oprcanhash::text, 'merges', o.oprcanmerge::text),
       {_desc("pg_operator", "o.oid")}, NULL
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
 WHERE {_USER} AND {_mine("pg_operator", "o.oid")}
UNION ALL
SELECT 'operator class', {_q("n.nspname", "c.opcname")} || ' USING ' || am.amname, NULL,
       json_build_object('type', format_type(c.opcintype, NULL), 'default', c.opcdefault::text,
         'family', (SELECT {_q("fn.nspname", "f.opfname")} FROM pg_opfamily f
                      JOIN pg_namespace fn ON fn.oid = f.opfnamespace WHERE f.oid = c.opcfamily),
         'storage', format_type(nullif(c.opckeytype, 0), NULL),
         {_members("pg_opclass", "c.oid", "c.opcfamily")}),
       {_desc("pg_opclass", "c.oid")}, NULL
  FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace JOIN pg_am am ON am.oid = c.opcmethod
 WHERE {_USER} AND {_mine("pg_opclass", "c.oid")}
UNION ALL
SELECT 'operator family', {_q("n.nspname", "f.opfname")} || ' USING ' || am.amname, NULL,
       json_build_object({_members("pg_opfamily", "f.oid", "f.oid")}),
       {_desc("pg_opfamily", "f.oid")}, NULL
  FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am am ON am.oid = f.opfmethod
 WHERE {_USER} AND {_mine("pg_opfamily", "f.oid")}
UNION ALL
SELECT 'cast', '(' || format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL) || ')',
       NULL,
       json_build_object('function', nullif(c.castfunc, 0)::regprocedure::text,
         'context', CASE c.castcontext WHEN 'e' THEN 'explicit' WHEN 'a' THEN 'assignment'
                                      ELSE 'implicit' END,
         'method', CASE c.castmethod WHEN 'f' THEN 'function' WHEN 'i' THEN 'in/out' ELSE 'binary' END),
       {_desc("pg_cast", "c.oid")}, NULL
  FROM pg_cast c WHERE c.oid >= {_INITDB} AND {_mine("pg_cast", "c.oid")}"""


def _types(version: int) -> str:
    multirange = ", 'multirange', r.rngmultitypid::regtype::text" if version >= 140000 else ""
    return f"""
SELECT 'base type', {_q("n.nspname", "t.typname")}, NULL,
       json_build_object('input', t.typinput::regproc::text, 'output', t.typoutput::regproc::text,
         'receive', nullif(t.typreceive, 0)::regproc::text, 'send', nullif(t.typsend, 0)::regproc::text,
         'length', t.typlen::text, 'alignment', t.typalign::text, 'storage', t.typstorage::text,
         'category', t.typcategory::text, 'by value', t.typbyval::text),
       {_desc("pg_type", "t.oid")}, NULL
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'b' AND {_USER} AND {_mine("pg_type", "t.oid")}
UNION ALL
SELECT 'composite type', {_q("n.nspname", "t.typname")}, NULL,
       json_build_object('attributes', (
         SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                           ORDER BY a.attnum)
           FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)),
       {_desc("pg_type", "t.oid")}, NULL
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_class c ON c.oid = t.typrelid
 WHERE t.typtype = 'c' AND c.relkind = 'c' AND {_USER} AND {_mine("pg_type", "t.oid")}
UNION ALL
SELECT 'domain', {_q("n.nspname", "t.typname")}, NULL,
       json_build_object('type', format_type(t.typbasetype, t.typtypmod),
         'nullability', CASE WHEN t.typnotnull THEN 'NOT NULL' ELSE 'NULL' END,
         'default', t.typdefault,
         'collation', (SELECT co.collname FROM pg_collation co
                        WHERE co.oid = t.typcollation AND t.typcollation <> 100),
         'checks', (SELECT string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid, true), ', '
                                      ORDER BY k.conname)
                      FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c')),
       {_desc("pg_type", "t.oid")}, NULL
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'd' AND {_USER} AND {_mine("pg_type", "t.oid")}
UNION ALL
SELECT 'range type', {_q("n.nspname", "t.typname")}, NULL,
       json_build_object('subtype', format_type(r.rngsubtype, NULL),
         'collation', (SELECT co.collname FROM pg_collation co WHERE co.oid = nullif(r.rngcollation, 100)),
         'operator class', (SELECT c.opcname FROM pg_opclass c WHERE c.oid = r.rngsubopc),
         'canonical', nullif(r.rngcanonical, 0)::regproc::text,
         'subtype diff', nullif(r.rngsubdiff, 0)::regproc::text
         {multirange}),
       {_desc("pg_type", "t.oid")}, NULL
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_range r ON r.rngtypid = t.oid
 WHERE {_USER} AND {_mine("pg_type", "t.oid")}
UNION ALL
SELECT 'collation', {_q("n.nspname", "co.collname")}, NULL,
       json_build_object(
         'provider', CASE co.collprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin'
                                          ELSE 'default' END,
         'locale', coalesce(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale'),
         'lc_collate', co.collcollate, 'lc_ctype', co.collctype,
         'deterministic', co.collisdeterministic::text, 'rules', to_jsonb(co) ->> 'collicurules'),
       {_desc("pg_collation", "co.oid")}, NULL
  FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
 WHERE {_USER} AND {_mine("pg_collation", "co.oid")}"""


_TEXT_SEARCH = f"""
SELECT 'text search configuration', {_q("n.nspname", "c.cfgname")}, NULL,
       json_build_object('parser', (
           SELECT {_q("pn.nspname", "p.prsname")} FROM pg_ts_parser p
             JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
         'mappings', (SELECT string_agg(tt.alias || ' ' || m.dicts, ', ' ORDER BY tt.tokid)
           FROM (SELECT maptokentype, string_agg(mapdict::regdictionary::text, ' ' ORDER BY mapseqno) AS dicts
                   FROM pg_ts_config_map WHERE mapcfg = c.oid GROUP BY maptokentype) m
           JOIN ts_token_type(c.cfgparser) tt ON tt.tokid = m.maptokentype)),
       {_desc("pg_ts_config", "c.oid")}, NULL
  FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
 WHERE {_USER} AND {_mine("pg_ts_config", "c.oid")}
UNION ALL
SELECT 'text search dictionary', {_q("n.nspname", "d.dictname")}, NULL,
       json_build_object('template', (SELECT {_q("tn.nspname", "t.tmplname")} FROM pg_ts_template t
                                        JOIN pg_namespace tn ON tn.oid = t.tmplnamespace
                                       WHERE t.oid = d.dicttemplate),
                         'options', d.dictinitoption),
       {_desc("pg_ts_dict", "d.oid")}, NULL
  FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
 WHERE {_USER} AND {_mine("pg_ts_dict", "d.oid")}
UNION ALL
SELECT 'text search parser', {_q("n.nspname", "p.prsname")}, NULL,
       json_build_object('start', p.prsstart::regproc::text, 'gettoken', p.prstoken::regproc::text,
         'end', p.prsend::regproc::text, 'headline', nullif(p.prsheadline, 0)::regproc::text,
         'lextypes', p.prslextype::regproc::text),
       {_desc("pg_ts_parser", "p.oid")}, NULL
  FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
 WHERE {_USER} AND {_mine("pg_ts_parser", "p.oid")}
UNION ALL
SELECT 'text search template', {_q("n.nspname", "t.tmplname")}, NULL,
       json_build_object('init', nullif(t.tmplinit, 0)::regproc::text, 'lexize', t.tmpllexize::regproc::text),
       {_desc("pg_ts_template", "t.oid")}, NULL
  FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
 WHERE {_USER} AND {_mine("pg_ts_template", "t.oid")}
UNION ALL
SELECT 'conversion', {_q("n.nspname", "c.conname")}, NULL,
       json_build_object('source', pg_encoding_to_char(c.conforencoding),
         'destination', pg_encoding_to_char(c.contoencoding), 'function', c.conproc::regproc::text,
         'default', c.condefault::text),
       {_desc("pg_conversion", "c.oid")}, NULL
  FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
 WHERE c.oid >= {_INITDB} AND {_USER} AND {_mine("pg_conversion", "c.oid")}"""


_FOREIGN = f"""
SELECT 'foreign-data wrapper', w.fdwname::text, NULL,
       json_build_object('handler', nullif(w.fdwhandler, 0)::regproc::text,
         'validator', nullif(w.fdwvalidator, 0)::regproc::text,
         'options', array_to_string(w.fdwoptions, ', ')),
       {_desc("pg_foreign_data_wrapper", "w.oid")}, NULL
  FROM pg_foreign_data_wrapper w WHERE w.oid >= {_INITDB} AND {_mine("pg_foreign_data_wrapper", "w.oid")}
UNION ALL
SELECT 'foreign server', s.srvname::text, NULL,
       json_build_object('wrapper', w.fdwname, 'type', s.srvtype, 'version', s.srvversion,
         'options', array_to_string(s.srvoptions, ', ')),
       {_desc("pg_foreign_server", "s.oid")}, NULL
  FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE {_mine("pg_foreign_server", "s.oid")}"""

_TABLE = f"{_q('n.nspname', 'c.relname')}"
_ON_APP_TABLE = f"{_USER} AND {_mine('pg_class', 'c.oid')} AND c.relname NOT IN {YOYO_NAMES}"

_TABLE_OBJECTS = f"""
SELECT 'statistics object', {_q("n.nspname", "s.stxname")}, {_TABLE},
       json_build_object('definition', pg_get_statisticsobjdef(s.oid)),
       {_desc("pg_statistic_ext", "s.oid")}, {_desc("pg_class", "c.oid")}
  FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_ON_APP_TABLE}
UNION ALL
SELECT 'trigger', tg.tgname::text, {_TABLE},
       json_build_object('definition', pg_get_triggerdef(tg.oid, true),
         'enabled state', {_enabled("tg.tgenabled")}),
       {_desc("pg_trigger", "tg.oid")}, {_desc("pg_class", "c.oid")}
  FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT tg.tgisinternal AND {_ON_APP_TABLE}
UNION ALL
SELECT 'rule', r.rulename::text, {_TABLE},
       json_build_object('definition', pg_get_ruledef(r.oid, true),
         'enabled state', {_enabled("r.ev_enabled")}),
       {_desc("pg_rewrite", "r.oid")}, {_desc("pg_class", "c.oid")}
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND {_ON_APP_TABLE}
UNION ALL
SELECT 'policy', p.polname::text, {_TABLE},
       json_build_object(
         'command', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                  WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
         'type', CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
         'roles', (SELECT string_agg({_role("r", "c.relowner")}, ', ' ORDER BY 1) FROM unnest(p.polroles) r),
         'using', pg_get_expr(p.polqual, p.polrelid, true),
         'with check', pg_get_expr(p.polwithcheck, p.polrelid, true)),
       {_desc("pg_policy", "p.oid")}, {_desc("pg_class", "c.oid")}
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_ON_APP_TABLE}"""


def _database_objects(version: int) -> str:
    if version >= 150000:
        tables = """string_agg(r.prrelid::regclass::text
                 || coalesce(' (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                                        FROM pg_attribute a WHERE a.attrelid = r.prrelid
                                         AND a.attnum = ANY (r.prattrs)) || ')', '')
                 || coalesce(' WHERE ' || pg_get_expr(r.prqual, r.prrelid, true), ''), ', ' ORDER BY 1)"""
        schemas = """, 'schemas', (SELECT string_agg(s.pnnspid::regnamespace::text, ', ' ORDER BY 1)
                        FROM pg_publication_namespace s WHERE s.pnpubid = p.oid)"""
    else:
        tables, schemas = "string_agg(r.prrelid::regclass::text, ', ' ORDER BY 1)", ""
    return f"""
SELECT 'schema', n.nspname::text, NULL, json_build_object(), {_desc("pg_namespace", "n.oid")}, NULL
  FROM pg_namespace n WHERE {_USER} AND {_mine("pg_namespace", "n.oid")}
UNION ALL
SELECT 'extension', x.extname::text, NULL,
       json_build_object('version', x.extversion, 'schema', x.extnamespace::regnamespace::text),
       {_desc("pg_extension", "x.oid")}, NULL
  FROM pg_extension x
UNION ALL
SELECT 'language', l.lanname::text, NULL,
       json_build_object('trusted', l.lanpltrusted::text,
         'handler', nullif(l.lanplcallfoid, 0)::regproc::text,
         'inline', nullif(l.laninline, 0)::regproc::text,
         'validator', nullif(l.lanvalidator, 0)::regproc::text),
       {_desc("pg_language", "l.oid")}, NULL
  FROM pg_language l WHERE l.oid >= {_INITDB} AND {_mine("pg_language", "l.oid")}
UNION ALL
SELECT 'access method', a.amname::text, NULL,
       json_build_object('type', CASE a.amtype WHEN 'i' THEN 'INDEX' ELSE 'TABLE' END,
         'handler', a.amhandler::regproc::text),
       {_desc("pg_am", "a.oid")}, NULL
  FROM pg_am a WHERE a.oid >= {_INITDB} AND {_mine("pg_am", "a.oid")}
UNION ALL
SELECT 'event trigger', e.evtname::text, NULL,
       json_build_object('event', e.evtevent, 'function', e.evtfoid::regprocedure::text,
         'tags', array_to_string(e.evttags, ', '),
         'enabled state', {_enabled("e.evtenabled")}),
       {_desc("pg_event_trigger", "e.oid")}, NULL
  FROM pg_event_trigger e WHERE e.oid >= {_INITDB} AND {_mine("pg_event_trigger", "e.oid")}
UNION ALL
SELECT 'publication', p.pubname::text, NULL,
       json_build_object('all tables', p.puballtables::text,
         'operations', concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END,
                                 CASE WHEN p.pubupdate THEN 'update' END,
                                 CASE WHEN p.pubdelete THEN 'delete' END,
                                 CASE WHEN p.pubtruncate THEN 'truncate' END),
         'via root', (to_jsonb(p) ->> 'pubviaroot'),
         'tables', (SELECT {tables} FROM pg_publication_rel r WHERE r.prpubid = p.oid) {schemas}),
       {_desc("pg_publication", "p.oid")}, NULL
  FROM pg_publication p WHERE {_mine("pg_publication", "p.oid")}"""


# What has an ACL: (description, ACL, owner, acldefault's letter), for grants. The owner's own
# privileges are compared only when they differ from the server's default (PostgreSQL 17 added
# MAINTAIN to it: a scratch database on another server version would differ otherwise).
_ACL_OBJECTS = f"""
SELECT {_desc("pg_class", "c.oid")} AS descr, c.relacl AS acl, c.relowner AS owner,
       CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END AS k
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_ON_APP_TABLE}
   AND c.relacl IS NOT NULL  -- else the owner's default only: no grant (skips describing each)
UNION ALL
SELECT {_desc("pg_class", "c.oid", "a.attnum")}, a.attacl, c.relowner, 'c'
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {_ON_APP_TABLE}
UNION ALL
SELECT {_desc("pg_proc", "p.oid")}, p.proacl, p.proowner, 'f'
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER} AND {_mine("pg_proc", "p.oid")}
UNION ALL
SELECT {_desc("pg_namespace", "n.oid")}, n.nspacl, n.nspowner, 'n'
  FROM pg_namespace n WHERE {_USER} AND {_mine("pg_namespace", "n.oid")}
UNION ALL
SELECT {_desc("pg_type", "t.oid")}, t.typacl, t.typowner, 'T'
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE (t.typtype IN ('e', 'd', 'r')
        OR t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
   AND {_USER} AND {_mine("pg_type", "t.oid")}
UNION ALL
SELECT {_desc("pg_foreign_server", "s.oid")}, s.srvacl, s.srvowner, 'S'
  FROM pg_foreign_server s WHERE {_mine("pg_foreign_server", "s.oid")}
UNION ALL
SELECT {_desc("pg_foreign_data_wrapper", "w.oid")}, w.fdwacl, w.fdwowner, 'F'
  FROM pg_foreign_data_wrapper w WHERE w.oid >= {_INITDB} AND {_mine("pg_foreign_data_wrapper", "w.oid")}"""

_PRIVILEGE = "a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END"

_PRIVILEGES = f"""
SELECT 'grant', 'on ' || o.descr || ' to ' || g.grantee, NULL,
       json_build_object('privileges', string_agg(g.privilege, ', ' ORDER BY g.privilege)), NULL, o.descr
  FROM ({_ACL_OBJECTS}) o
 CROSS JOIN LATERAL (SELECT {_role("a.grantee", "o.owner")} AS grantee, {_PRIVILEGE} AS privilege
                       FROM aclexplode(coalesce(o.acl, acldefault(o.k::"char", o.owner))) a) g
 GROUP BY o.descr, g.grantee, o.k, o.owner
HAVING g.grantee <> 'owner' OR array_agg(g.privilege ORDER BY g.privilege) IS DISTINCT FROM (
         SELECT array_agg(a.privilege_type ORDER BY a.privilege_type)
           FROM aclexplode(acldefault(o.k::"char", o.owner)) a WHERE a.grantee = o.owner)
UNION ALL
SELECT 'default privileges', g.what, NULL,
       json_build_object('privileges', string_agg(g.privilege, ', ' ORDER BY g.privilege)), NULL, NULL
  FROM (SELECT 'on new ' || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'
                                 WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' ELSE 'schemas' END
               || coalesce(' in schema ' || n.nspname, '')
               || CASE WHEN pg_get_userbyid(d.defaclrole) = current_user THEN ''
                       ELSE ' of role ' || pg_get_userbyid(d.defaclrole) END
               || ' to ' || {_role("a.grantee", "d.defaclrole")} AS what, {_PRIVILEGE} AS privilege
          FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
         CROSS JOIN LATERAL aclexplode(d.defaclacl) a) g
 GROUP BY g.what"""

_COMMENTS = f"""
SELECT 'comment', 'on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), NULL,
       json_build_object('text', d.description), NULL, pg_describe_object(d.classoid, d.objoid, d.objsubid)
  FROM pg_description d
 WHERE (d.objoid >= {_INITDB} OR d.classoid = 'pg_namespace'::regclass AND d.objoid = 'public'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM pg_depend x_
                    WHERE x_.classid = d.classoid AND x_.objid = d.objoid AND x_.deptype = 'e')
   AND coalesce((pg_identify_object(d.classoid, d.objoid, 0)).schema, '') NOT IN {_SYSTEM}
   AND coalesce((pg_identify_object(d.classoid, d.objoid, 0)).schema, '') NOT LIKE 'pg\\_t%'
   AND NOT (d.classoid = 'pg_class'::regclass AND d.objoid IN (
         SELECT c.oid FROM pg_class c WHERE c.relname IN {YOYO_NAMES}))"""


def queries(version: int) -> tuple[str, ...]:
    """The statements of every kind (no parameters: % is itself), to run pipelined: each part
    on its own plans in about half the time the union of them all takes, and runs faster."""
    return (
        _database_objects(version),
        _routines(version),
        _OPERATORS,
        _types(version),
        _TEXT_SEARCH,
        _FOREIGN,
        _TABLE_OBJECTS,
        _PRIVILEGES,
        _COMMENTS,
    )
