/**
 * The house's structure, as tests: imports follow the floors (proto/ and kit/ at the
 * bottom; relay/, coordinator/, sdk/ on them; sim/ above; bench/ and cli/ on top; a
 * sans-IO core imports only proto/ and its own core), the import graph has no circle,
 * the lint rule that fences the floors fails on an upward import, and no source file
 * outside tests grows past 800 lines. The floor table is scripts/lint/floors.mjs.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ESLint } from 'eslint';

/** dist/test/floors.test.js → the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Longest a source file outside tests may be, lines. */
const SOURCE_LINES_MAX = 800;

interface FloorsModule {
  floorViolation(from: string, to: string): string | undefined;
}

async function floors(): Promise<FloorsModule> {
  return (await import(pathToFileURL(join(REPO_ROOT, 'scripts', 'lint', 'floors.mjs')).href)) as FloorsModule;
}

/** Every TypeScript source of the repository, repository-relative with `/`. */
function sources(dir = REPO_ROOT, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sources(path, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(relative(REPO_ROOT, path).split(sep).join('/'));
  }
  return out;
}

/** Relative imports (static, re-exports and dynamic), resolved to repository-relative `.ts` paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO_ROOT, file), 'utf8');
  const found: string[] = [];
  const pattern = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
    found.push(posix.normalize(posix.join(posix.dirname(file), m[2]!)).replace(/\.js$/, '.ts'));
  }
  return found;
}

/** Strongly connected components of more than one file (Tarjan). */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('every import follows the floors: nothing imports from a higher floor or a sibling part, cores import only proto and themselves', async () => {
  const { floorViolation } = await floors();
  const crossings: string[] = [];
  for (const file of sources()) {
    for (const target of importsOf(file)) {
      const why = floorViolation(file, target);
      if (why !== undefined) crossings.push(why);
    }
  }
  assert.deepEqual(crossings, []);
});

test('the import graph has no circle (between files, so none between parts either)', () => {
  const graph = new Map(sources().map((file) => [file, importsOf(file)] as const));
  assert.ok(graph.size > 100, `read ${graph.size} source files`);
  assert.deepEqual(circles(graph), []);
});

test('the lint rule fails on a deliberately added upward import, and on a core importing its driver', async () => {
  const eslint = new ESLint({ cwd: REPO_ROOT });
  const lint = async (filePath: string, code: string): Promise<string[]> => {
    const [result] = await eslint.lintText(code, { filePath: join(REPO_ROOT, filePath) });
    return result!.messages.filter((m) => m.ruleId === 'floors/imports').map((m) => m.message);
  };
  // A relay reaching up into the simulator's deployment (sim/ composes relays, never the reverse).
  const upward = await lint('relay/src/floors-probe.ts', "import { SdkScenario } from '../../sim/src/deployment/scenario.js';\nexport const probe = SdkScenario;\n");
  assert.equal(upward.length, 1, upward.join('\n'));
  assert.match(upward[0]!, /relay\/ may import only proto\/, kit\/, relay\//);
  // A part reaching sideways into another part.
  const sideways = await lint('sdk/src/floors-probe.ts', "export { RelayCore } from '../../relay/src/core/relay-core.js';\n");
  assert.equal(sideways.length, 1, sideways.join('\n'));
  // A sans-IO core importing its own driver layer, and the kit.
  const core = await lint('sdk/src/core/floors-probe.ts', "import '../connect.js';\nimport { parseFlags } from '../../../kit/flags.js';\nexport const probe = parseFlags;\n");
  assert.equal(core.length, 2, core.join('\n'));
  assert.match(core[0]!, /sans-IO core/);
  // The same files importing what their floor allows pass.
  assert.deepEqual(await lint('relay/src/floors-probe.ts', "import { parseFlags } from '../../kit/flags.js';\nimport { HEADER_BYTES } from '../../proto/src/header.js';\nexport const probe = [parseFlags, HEADER_BYTES];\n"), []);
  assert.deepEqual(await lint('cli/floors-probe.ts', "export { SdkScenario } from '../sim/src/deployment/scenario.js';\n"), []);
});

test(`no source file outside tests is longer than ${SOURCE_LINES_MAX} lines`, () => {
  const long = sources()
    .filter((file) => !file.split('/').includes('test') && !file.startsWith('test/'))
    .map((file) => ({ file, lines: readFileSync(join(REPO_ROOT, file), 'utf8').split('\n').length }))
    .filter(({ lines }) => lines > SOURCE_LINES_MAX)
    .map(({ file, lines }) => `${file}: ${lines} lines`);
  assert.deepEqual(long, []);
});
