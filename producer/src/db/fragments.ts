// Lists rendered once into SQL text, for the statements the API and the pipeline run for every task.
// postgres.js's list helper, `${sql(['a', 'b'])}`, decides how to render a list by searching all the
// statement text before it with eight regular expressions, every time the statement is built: about
// 20 µs a list near the end of a long statement, and the report statement has five. A CPU profile of
// the latency run put a tenth of the producer's time in those searches (BENCHMARKS.md, issue 16
// notes). The lists here are constants of the code, never input, and are quoted as postgres.js
// quotes them.
import type { PendingQuery, Row, Sql } from 'postgres';

export type Fragment = PendingQuery<Row[]>;

/** `"a", "b"`, or `"t"."a", "t"."b"` with a table (or alias) name. */
export function columnList(sql: Sql, columns: readonly string[], table?: string): Fragment {
  const prefix = table === undefined ? '' : `${quoteIdentifier(table)}.`;
  return sql.unsafe(columns.map((column) => prefix + quoteIdentifier(column)).join(', '));
}

/** `('a', 'b')`: the right-hand side of an `in`. */
export function literalList(sql: Sql, values: readonly string[]): Fragment {
  return sql.unsafe(`(${values.map(quoteLiteral).join(', ')})`);
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
