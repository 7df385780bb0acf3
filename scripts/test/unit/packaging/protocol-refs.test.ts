// Every "PROTOCOL §n" or "PROTOCOL §n.m" cited in the repository points at a section of PROTOCOL.md
// (a "## n." heading) and, for n.m, at item m of that section's numbered list: a citation that names
// nothing sends the reader nowhere.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const protocol = readFileSync(`${root}PROTOCOL.md`, 'utf8');

/** Section number → the numbered items ("1. ", "2. " at the start of a line) inside it. */
function outline(markdown: string): Map<number, Set<number>> {
  const sections = new Map<number, Set<number>>();
  let current: Set<number> | undefined;
  for (const line of markdown.split('\n')) {
    const heading = /^## (\d+)\. /.exec(line);
    if (heading) {
      current = new Set();
      sections.set(Number(heading[1]), current);
      continue;
    }
    const item = /^(\d+)\. /.exec(line);
    if (item && current) current.add(Number(item[1]));
  }
  return sections;
}

/** Every citation in the tracked files, with where it is. */
function citations(): { ref: string; section: number; item?: number; where: string }[] {
  const hits = execFileSync('git', ['grep', '-n', '-o', '-E', 'PROTOCOL §[0-9]+(\\.[0-9]+)?', '--', '.'], {
    cwd: root,
    encoding: 'utf8',
  });
  return hits
    .trim()
    .split('\n')
    .map((line) => {
      const match = /^(.*?:\d+):PROTOCOL §(\d+)(?:\.(\d+))?$/.exec(line);
      if (!match) throw new Error(`unexpected git grep line: ${line}`);
      const [, where, section, item] = match as unknown as [string, string, string, string | undefined];
      return {
        ref: `§${section}${item ? `.${item}` : ''}`,
        section: Number(section),
        ...(item ? { item: Number(item) } : {}),
        where,
      };
    });
}

describe('PROTOCOL.md citations', () => {
  const sections = outline(protocol);

  test('the outline is read (sections 1 to 10, numbered steps in the dispatcher section)', () => {
    expect([...sections.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sections.get(6)?.size).toBeGreaterThanOrEqual(5);
  });

  test('every citation names a section, and an item of it where it says n.m', () => {
    const found = citations();
    expect(found.length).toBeGreaterThan(30);
    const dangling = found.filter(
      (c) => !sections.has(c.section) || (c.item !== undefined && !sections.get(c.section)?.has(c.item)),
    );
    expect(dangling.map((c) => `${c.where} ${c.ref}`)).toEqual([]);
  });
});
