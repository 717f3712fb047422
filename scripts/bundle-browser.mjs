// Bundles `slipstream/browser` for browsers with esbuild, as a game's bundler would:
// platform=browser, ES module, everything inlined (msgpackr too) and NO Node polyfills —
// esbuild cannot resolve a `node:*` module or a Node builtin for the browser platform,
// so the bundle fails if anything the entry reaches imports one. Needs `npm run build`
// first (the entry resolves through package.json `exports` to dist/).
//   node scripts/bundle-browser.mjs [--out dist/browser/slipstream-browser.js] [--entry <specifier>]
import { build } from 'esbuild';
import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..') + sep;

/**
 * Bundles `entry` (default `slipstream/browser`, resolved from the repository root) to
 * `outfile`. Resolves with esbuild's result; rejects with esbuild's errors (a Node-only
 * import is one: "Could not resolve \"node:…\"").
 */
export async function bundleBrowser({ entry = 'slipstream/browser', outfile = `${ROOT}dist/browser/slipstream-browser.js`, write = true } = {}) {
  return build({
    stdin: { contents: `export * from ${JSON.stringify(entry)};`, resolveDir: ROOT, sourcefile: 'bundle-entry.js', loader: 'js' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    outfile,
    write,
    logLevel: 'silent',
    metafile: true,
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, entry: { type: 'string' } } });
  try {
    const result = await bundleBrowser({ entry: values.entry, outfile: values.out });
    const [file, info] = Object.entries(result.metafile.outputs)[0];
    console.log(`${file}: ${info.bytes} bytes from ${Object.keys(result.metafile.inputs).length} modules`);
  } catch (error) {
    console.error(`bundle failed: ${(error.errors ?? []).map((e) => `${e.location?.file ?? ''}: ${e.text}`).join('; ') || error.message}`);
    process.exit(1);
  }
}
