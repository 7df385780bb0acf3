// Reading PostgreSQL plans in tests: the JSON plan tree, flattened, and the statements a piece of code
// sent (captured through postgres.js's `debug` hook) explained as they were sent.
import type postgres from 'postgres';

/** The fields of EXPLAIN (FORMAT JSON) the plan tests read. */
export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  Plans?: PlanNode[];
}

/** A plan and every node below it. */
export function planNodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(planNodes)];
}

export interface SentStatement {
  query: string;
  params: unknown[];
}

export interface ExplainedStatement {
  /** The statement, whitespace folded, for assertion messages. */
  query: string;
  nodes: PlanNode[];
  /** With `analyze`: EXPLAIN ANALYZE's execution time. */
  executionMs?: number;
}

/**
 * EXPLAINs a captured statement with its own parameters. `analyze` runs it too (timing off): only for
 * statements that change nothing, or whose changes the test does not mind.
 */
export async function explainStatement(
  sql: postgres.Sql,
  statement: SentStatement,
  options: { analyze?: boolean } = {},
): Promise<ExplainedStatement> {
  const [row] = await sql.unsafe<{ 'QUERY PLAN': { Plan: PlanNode; 'Execution Time'?: number }[] }[]>(
    `explain (${options.analyze ? 'analyze, timing off, ' : ''}format json) ${statement.query}`,
    statement.params as postgres.ParameterOrJSON<never>[],
  );
  const top = row?.['QUERY PLAN'][0];
  if (!top) throw new Error(`no plan for ${statement.query}`);
  return {
    query: statement.query.replace(/\s+/g, ' ').trim(),
    nodes: planNodes(top.Plan),
    ...(top['Execution Time'] !== undefined ? { executionMs: top['Execution Time'] } : {}),
  };
}
