import { describe, expect, it } from 'vitest';
import { parseExplainAst } from './ast.ts';
import { checkAst, checkQueryTree, clausesOf } from './check.ts';
import { SqlError } from './errors.ts';
import { rowBinaryHeader } from './row-binary.ts';

// EXPLAIN AST output as the engine (26.7) prints it.
const AST = (lines: string[]) => parseExplainAst(lines.join('\n'));
const select = (inner: string[]) =>
  AST([
    'SelectWithUnionQuery (children 1)',
    ' ExpressionList (children 1)',
    '  SelectQuery (children 2)',
    '   ExpressionList (children 1)',
    '    Asterisk',
    '   TablesInSelectQuery (children 1)',
    '    TablesInSelectQueryElement (children 1)',
    '     TableExpression (children 1)',
    ...inner.map((l) => `      ${l}`),
  ]);

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return err instanceof SqlError ? `${err.code} ${err.codeName}` : String(err);
  }
};

describe('checkAst', () => {
  it('lets reads of documented tables, harmless system tables and generating table functions through', () => {
    expect(codeOf(() => checkAst(select(['TableIdentifier usage_daily']), 'analytics'))).toBe('ok');
    expect(
      codeOf(() => checkAst(select(['TableIdentifier analytics.usage_events (alias u)']), 'analytics')),
    ).toBe('ok');
    expect(codeOf(() => checkAst(select(['TableIdentifier system.settings']), 'analytics'))).toBe('ok');
    expect(
      codeOf(() =>
        checkAst(
          select(['Function numbers (children 1)', ' ExpressionList (children 1)', '  Literal UInt64_3']),
          'analytics',
        ),
      ),
    ).toBe('ok');
  });

  it('refuses what reaches files, servers, other tables or settings, with ClickHouse codes', () => {
    expect(codeOf(() => checkAst(select(['TableIdentifier system.query_log']), 'analytics'))).toBe(
      '497 ACCESS_DENIED',
    );
    expect(codeOf(() => checkAst(select(['TableIdentifier analytics.export_jobs']), 'analytics'))).toBe(
      '497 ACCESS_DENIED',
    );
    expect(
      codeOf(() =>
        checkAst(
          select(['Function url (children 1)', ' ExpressionList (children 1)', "  Literal 'http://x'"]),
          'analytics',
        ),
      ),
    ).toBe('497 ACCESS_DENIED');
    const file = AST([
      'SelectWithUnionQuery (children 1)',
      ' ExpressionList (children 1)',
      '  SelectQuery (children 1)',
      '   ExpressionList (children 1)',
      '    Function file (children 1)',
      '     ExpressionList (children 1)',
      "      Literal '/etc/hostname'",
    ]);
    expect(codeOf(() => checkAst(file, 'analytics'))).toBe('497 ACCESS_DENIED');
    const inIdent = AST([
      'SelectWithUnionQuery (children 1)',
      ' ExpressionList (children 1)',
      '  SelectQuery (children 1)',
      '   ExpressionList (children 1)',
      '    Function in (children 1)',
      '     ExpressionList (children 2)',
      '      Literal UInt64_1',
      '      Identifier system.processes',
    ]);
    expect(codeOf(() => checkAst(inIdent, 'analytics'))).toBe('497 ACCESS_DENIED');
    const outfile = AST([
      'SelectWithUnionQuery (children 2)',
      ' ExpressionList (children 1)',
      '  SelectQuery (children 1)',
      '   ExpressionList (children 1)',
      '    Literal UInt64_1',
      " Literal '/tmp/x'",
    ]);
    expect(codeOf(() => checkAst(outfile, 'analytics'))).toBe('344 SUPPORT_IS_DISABLED');
    const settings = AST([
      'SelectWithUnionQuery (children 1)',
      ' ExpressionList (children 1)',
      '  SelectQuery (children 2)',
      '   ExpressionList (children 1)',
      '    Literal UInt64_1',
      '   Set',
    ]);
    expect(codeOf(() => checkAst(settings, 'analytics'))).toBe('164 READONLY');
    const insert = AST(['InsertQuery   (children 1)', ' Identifier t']);
    expect(codeOf(() => checkAst(insert, 'analytics'))).toBe('164 READONLY');
  });

  it('an unreadable tree is an error, never a pass', () => {
    expect(() => parseExplainAst('A\n   B')).toThrow(/indentation/);
  });
});

describe('checkQueryTree', () => {
  it('checks every resolved table and table function', () => {
    const ok = 'JOIN TREE\n  TABLE id: 9, alias: __table2, table_name: analytics.usage_daily\n';
    expect(codeOf(() => checkQueryTree(ok, 'analytics'))).toBe('ok');
    const cte =
      'QUERY id: 3, alias: __table1, is_subquery: 1, is_cte: 1, cte_name: x\n  TABLE id: 9, table_name: system.processes\n';
    expect(codeOf(() => checkQueryTree(cte, 'analytics'))).toBe('497 ACCESS_DENIED');
    expect(
      codeOf(() =>
        checkQueryTree('TABLE_FUNCTION id: 18, alias: __table1, table_function_name: file', 'analytics'),
      ),
    ).toBe('497 ACCESS_DENIED');
  });
});

describe('clausesOf', () => {
  it('reads FORMAT and INTO OUTFILE from the engine formatting, and drops FORMAT for EXPLAIN', () => {
    expect(clausesOf("SELECT 1\nINTO OUTFILE '/tmp/x'\nFORMAT CSV")).toEqual({
      format: 'CSV',
      outfile: true,
      explainable: "SELECT 1\nINTO OUTFILE '/tmp/x'",
    });
    expect(clausesOf("SELECT 'FORMAT JSON'")).toEqual({
      format: undefined,
      outfile: false,
      explainable: "SELECT 'FORMAT JSON'",
    });
  });
});

describe('rowBinaryHeader', () => {
  it('is the count, names and types of a RowBinaryWithNamesAndTypes block', () => {
    // two columns: number UInt64, s String; then one row
    const block = Buffer.from(
      '02066e756d62657201730655496e74363406537472696e670000000000000000013001',
      'hex',
    );
    expect(rowBinaryHeader(block)?.toString('hex')).toBe('02066e756d62657201730655496e74363406537472696e67');
  });
});
