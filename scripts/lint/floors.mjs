// The floors of the house, and the eslint rule that fences them.
//
// From the ground up: proto/ (wire formats, codecs, the coordinator API contract,
// errors, interfaces) and kit/ (IO helpers that are nobody's part: flag parsing,
// config reading, logging, the coordinator HTTP client, the IP-literal lookup); then
// the three parts relay/, coordinator/ and sdk/, each importing only the floor below
// and itself; then sim/, which composes the real parts into whole deployments; then
// bench/ and cli/ (the composition root). Cross-part tests in test/ sit on top.
//
// Inside a part, a sans-IO core (`<part>/src/core/`, and all of proto/) imports only
// proto/ and its own core: never its driver, never kit/.
//
// A part's own tests (`<part>/test/`) may import what the part may, plus test/support/.
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Which top-level folders each floor may import from (itself included). */
export const FLOORS = {
  proto: ['proto'],
  kit: ['proto', 'kit'],
  relay: ['proto', 'kit', 'relay'],
  coordinator: ['proto', 'kit', 'coordinator'],
  sdk: ['proto', 'kit', 'sdk'],
  sim: ['proto', 'kit', 'relay', 'coordinator', 'sdk', 'sim'],
  bench: ['proto', 'kit', 'relay', 'coordinator', 'sdk', 'sim', 'bench'],
  cli: ['proto', 'kit', 'relay', 'coordinator', 'sdk', 'sim', 'bench', 'cli'],
  test: ['proto', 'kit', 'relay', 'coordinator', 'sdk', 'sim', 'bench', 'cli', 'test'],
};

/** The floors from the ground up, for messages and the import-graph test. */
export const FLOOR_ORDER = ['proto', 'kit', 'relay', 'coordinator', 'sdk', 'sim', 'bench', 'cli', 'test'];

/**
 * Where a repository-relative path sits: its floor (top-level folder, or undefined
 * for folders outside the fence such as scripts/ and deploy/), whether it is a
 * sans-IO core and which core, and whether it is a part's own test.
 */
export function place(path) {
  const segments = path.split('/');
  const floor = Object.prototype.hasOwnProperty.call(FLOORS, segments[0]) ? segments[0] : undefined;
  const isCore = floor === 'proto' ? segments[1] === 'src' : segments[1] === 'src' && segments[2] === 'core';
  const core = isCore ? (floor === 'proto' ? 'proto/src' : `${floor}/src/core`) : undefined;
  const isPartTest = floor !== undefined && floor !== 'test' && segments[1] === 'test';
  return { floor, core, isPartTest };
}

/**
 * Why `from` (repository-relative) may not import `to`, or undefined when it may.
 * Both are paths of files inside the repository.
 */
export function floorViolation(from, to) {
  const a = place(from);
  const b = place(to);
  if (a.floor === undefined || b.floor === undefined) return undefined;
  if (a.core !== undefined && !a.isPartTest) {
    if (b.floor === 'proto' && b.core !== undefined) return undefined;
    if (b.core === a.core) return undefined;
    return `${from} is a sans-IO core: it imports only proto/ and its own core (${a.core}/), not ${to}`;
  }
  if (a.isPartTest && to.startsWith('test/support/')) return undefined;
  if (FLOORS[a.floor].includes(b.floor)) return undefined;
  return `${a.floor}/ may import only ${FLOORS[a.floor].map((f) => `${f}/`).join(', ')}; ${from} imports ${to} (an upward or sideways import across floors; see scripts/lint/floors.mjs)`;
}

/** The repository root: the folder of this file's grandparent. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function repoPath(absolute) {
  const rel = relative(REPO_ROOT, absolute);
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel.split(sep).join('/');
}

/** The eslint rule: reports each relative import that crosses the floors. */
const importsRule = {
  meta: {
    type: 'problem',
    docs: { description: 'Imports follow the floors: proto/ and kit/ at the bottom, relay/ coordinator/ sdk/ on them, sim/ above, bench/ and cli/ on top; a core imports only proto/ and itself.' },
    messages: { crossing: 'floors: {{why}}' },
    schema: [],
  },
  create(context) {
    const file = repoPath(context.physicalFilename ?? context.filename);
    if (file === undefined) return {};
    function checkSource(node) {
      if (!node || node.type !== 'Literal' || typeof node.value !== 'string' || !node.value.startsWith('.')) return;
      const target = repoPath(resolve(dirname(resolve(REPO_ROOT, file)), node.value));
      if (target === undefined) return;
      const why = floorViolation(file, target.replace(/\.js$/, '.ts'));
      if (why !== undefined) context.report({ node, messageId: 'crossing', data: { why } });
    }
    return {
      ImportDeclaration: (node) => checkSource(node.source),
      ExportNamedDeclaration: (node) => checkSource(node.source),
      ExportAllDeclaration: (node) => checkSource(node.source),
      ImportExpression: (node) => checkSource(node.source),
    };
  },
};

/** The eslint plugin (`floors/imports`). */
export const floorsPlugin = { rules: { imports: importsRule } };
