// Lint rules. Two fences matter most. The floors: each part imports only the floors
// below it (scripts/lint/floors.mjs). The sans-IO fence: protocol cores in proto/ and
// every */src/core/ must not reach the clock, timers, randomness or sockets, so that
// the same code runs on real sockets and in the simulator's virtual time.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { floorsPlugin } from './scripts/lint/floors.mjs';

const forbiddenGlobals = [
  { name: 'Date', message: 'Sans-IO core: take `now` (monotonic ms) from the caller.' },
  { name: 'setTimeout', message: 'Sans-IO core: expose pollTimeout() and let the driver schedule.' },
  { name: 'setInterval', message: 'Sans-IO core: expose pollTimeout() and let the driver schedule.' },
  { name: 'setImmediate', message: 'Sans-IO core: expose pollTimeout() and let the driver schedule.' },
  { name: 'performance', message: 'Sans-IO core: take `now` (monotonic ms) from the caller.' },
];
const forbiddenModules = ['dgram', 'node:dgram', 'net', 'node:net', 'ioredis', 'node-datachannel', 'perf_hooks', 'node:perf_hooks', 'timers', 'node:timers'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // The floors between the parts (scripts/lint/floors.mjs says which floor may import which).
    files: ['**/*.ts'],
    plugins: { floors: floorsPlugin },
    rules: { 'floors/imports': 'error' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    // The examples are Node programs a game developer copies: Node's web-platform globals too.
    files: ['examples/**/*.mjs'],
    languageOptions: {
      globals: { Buffer: 'readonly', fetch: 'readonly', URL: 'readonly', performance: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly' },
    },
  },
  {
    files: ['proto/**/*.ts', '*/src/core/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', ...forbiddenGlobals],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'Sans-IO core: use the injected seeded Rng.' }],
      'no-restricted-imports': ['error', { paths: forbiddenModules.map((name) => ({ name, message: 'Sans-IO core: sockets and timers belong in drivers.' })) }],
    },
  },
);
