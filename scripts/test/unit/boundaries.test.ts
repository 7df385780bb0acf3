// The module boundaries of ARCHITECTURE.md ("Boundaries"), checked on the import graph itself: a
// forbidden import anywhere along the way fails this test, with the chain that leads to it.
//
// A test rather than biome's noRestrictedImports per folder: the rules are about what a module reaches,
// not only what it names (a pure rule that imports a helper that imports amqplib loads amqplib all the
// same), workspace packages are followed through their exports maps, and a type-only import, which
// tsc erases, is told apart from one that loads the module at run time.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Edge {
  specifier: string;
  /** A workspace file, or undefined for a package outside the repository (or node:). */
  file: string | undefined;
  /** `import type` / `export type`: erased by tsc (verbatimModuleSyntax), loads nothing. */
  typeOnly: boolean;
}

/** Workspace package name → its folder and its exports map. */
const workspaces = new Map<string, { dir: string; exports: Record<string, { source?: string }> }>();
for (const name of JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).workspaces as string[]) {
  const pkg = JSON.parse(readFileSync(join(ROOT, name, 'package.json'), 'utf8'));
  workspaces.set(pkg.name, { dir: join(ROOT, name), exports: pkg.exports ?? {} });
}

function resolveSpecifier(from: string, specifier: string): string | undefined {
  if (specifier.startsWith('.')) {
    const base = resolve(dirname(from), specifier);
    for (const candidate of [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')]) {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    }
    throw new Error(`${relative(ROOT, from)}: cannot resolve ${specifier}`);
  }
  const [scope = '', name = '', ...rest] = specifier.split('/');
  const workspace = workspaces.get(`${scope}/${name}`);
  if (!workspace) return undefined;
  const entry = workspace.exports[rest.length === 0 ? '.' : `./${rest.join('/')}`]?.source;
  if (!entry) throw new Error(`${relative(ROOT, from)}: ${specifier} is not in its package's exports map`);
  return join(workspace.dir, entry);
}

const edgeCache = new Map<string, Edge[]>();

function edgesOf(file: string): Edge[] {
  const cached = edgeCache.get(file);
  if (cached) return cached;
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const add = (specifier: string, typeOnly: boolean) =>
    edges.push({ specifier, file: resolveSpecifier(file, specifier), typeOnly });
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node.importClause?.isTypeOnly === true);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      add(node.moduleSpecifier.text, node.isTypeOnly);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const literal = node.argument.literal;
      if (ts.isStringLiteral(literal)) add(literal.text, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  edgeCache.set(file, edges);
  return edges;
}

/** Package name of a bare specifier: `@scope/name` or `name` (node: builtins as written). */
const packageOf = (specifier: string) =>
  specifier.startsWith('@')
    ? specifier.split('/').slice(0, 2).join('/')
    : (specifier.split('/')[0] ?? specifier);

/**
 * Every import reachable from `start` (runtime imports only, or type-only ones too) for which `bad`
 * answers a reason, each with the chain of files that leads to it.
 */
function violations(
  start: string,
  options: { runtimeOnly: boolean },
  bad: (edge: Edge, from: string) => string | undefined,
): string[] {
  const found: string[] = [];
  const seen = new Set<string>([start]);
  const queue: { file: string; chain: string[] }[] = [{ file: start, chain: [relative(ROOT, start)] }];
  while (queue.length > 0) {
    const { file, chain } = queue.shift() as { file: string; chain: string[] };
    for (const edge of edgesOf(file)) {
      if (options.runtimeOnly && edge.typeOnly) continue;
      const reason = bad(edge, file);
      if (reason) found.push(`${[...chain, edge.specifier].join(' → ')}: ${reason}`);
      if (edge.file && !seen.has(edge.file)) {
        seen.add(edge.file);
        queue.push({ file: edge.file, chain: [...chain, relative(ROOT, edge.file)] });
      }
    }
  }
  return found;
}

function sourcesUnder(folder: string): string[] {
  const dir = join(ROOT, folder);
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(dir, name));
}

/** Libraries that talk to the network, the disk or other processes. */
const IO =
  /^(amqplib|postgres|pg|pg-.*|node-pg-migrate|undici|fastify|fastify-.*|@fastify\/.*|close-with-grace)$/;
const IO_BUILTINS = /^node:(http|https|http2|net|tls|dgram|dns|fs|fs\/promises|child_process|cluster)$/;

/** Rules and their data, no I/O: unit-tested without servers, and loadable anywhere. */
const PURE_MODULES = [
  'common/src/index.ts',
  'rabbitmq/src/contract.ts',
  'producer/src/tasks/status-transitions.ts',
  'producer/src/tasks/task.ts',
  'producer/src/dispatch/backoff.ts',
  'producer/src/dispatch/claim-query.ts',
  'producer/src/dispatch/in-flight.ts',
  'producer/src/dispatch/types.ts',
  'producer/src/dispatch/work-message.ts',
  'producer/src/config.ts',
  'consumer/src/config.ts',
  'consumer/src/report-messages.ts',
  'consumer/src/report-policy.ts',
  'consumer/src/retry-policy.ts',
  'consumer/src/simulate-processing.ts',
];

describe('module boundaries', () => {
  test.each(PURE_MODULES)('%s loads no I/O library and names the contract, not the rabbitmq root', (file) => {
    const start = join(ROOT, file);
    const found = violations(start, { runtimeOnly: true }, (edge) => {
      if (edge.file) return undefined;
      const name = packageOf(edge.specifier);
      return IO.test(name) || IO_BUILTINS.test(edge.specifier) ? 'an I/O library' : undefined;
    });
    // Its own imports, type-only ones too: the rabbitmq root carries the connection and the publisher,
    // and even a type from it or from an I/O library ties a pure module to them.
    for (const edge of edgesOf(start)) {
      if (edge.specifier === '@task-pipeline/rabbitmq') {
        found.push(`${file} → ${edge.specifier}: the package root; import @task-pipeline/rabbitmq/contract`);
      } else if (!edge.file && IO.test(packageOf(edge.specifier))) {
        found.push(`${file} → ${edge.specifier}: an I/O library, even as a type`);
      }
    }
    expect(found).toEqual([]);
  });

  test('the producer domain (tasks/, dispatch/) imports no HTTP schema, no plugin, no route, no Fastify', () => {
    const http = ['producer/src/schemas/', 'producer/src/plugins/', 'producer/src/routes/'].map((p) =>
      join(ROOT, p),
    );
    const found = [...sourcesUnder('producer/src/tasks'), ...sourcesUnder('producer/src/dispatch')].flatMap(
      (file) =>
        violations(file, { runtimeOnly: false }, (edge) => {
          if (edge.file) return http.some((p) => edge.file?.startsWith(p)) ? 'the HTTP layer' : undefined;
          return /^(fastify|fastify-.*|@fastify\/.*)$/.test(packageOf(edge.specifier))
            ? 'Fastify'
            : undefined;
        }),
    );
    expect([...new Set(found)]).toEqual([]);
  });

  test('the consumer imports nothing of the producer', () => {
    const producer = join(ROOT, 'producer/');
    const found = sourcesUnder('consumer/src').flatMap((file) =>
      violations(file, { runtimeOnly: false }, (edge) =>
        edge.file?.startsWith(producer) || edge.specifier.startsWith('@task-pipeline/producer')
          ? 'the producer'
          : undefined,
      ),
    );
    expect([...new Set(found)]).toEqual([]);
  });
});
