// Preloaded (`--import`) into every test file's process by scripts/run-tests.mjs: once
// the file's tests and its after() hooks have all finished, a process still alive
// TEST_EXIT_GRACE_MS later is failed with the file's name and what keeps it alive, so a
// leaked server, timer or native thread costs a bounded wait and a clear error instead
// of a run that never ends (the runner gives no --test-force-exit: that flag can drop a
// file's last verdicts, nodejs/node#64833).
//
// "Finished" is the root test's end on the test runner's `node.test` tracing channel,
// published after every test and every root after() hook. On a Node without that
// channel, this module's own root after() hook (the first to run) stands in for it.
// The timer is unref'd: a file that exits on its own never waits for it.
import { tracingChannel } from 'node:diagnostics_channel';
import { setTimeout } from 'node:timers';
import { isMainThread } from 'node:worker_threads';

/** How long a test file's process may stay alive after its tests and hooks finished, ms. */
const TEST_EXIT_GRACE_MS = 20_000;
/** The exit code of a file stopped here (the runner names it; node's own codes stop at 14). */
export const KEPT_ALIVE_EXIT_CODE = 75;

// Only the main thread of a test file's process (the runner's per-file children carry
// NODE_TEST_CONTEXT) is watched: the runner process itself, which also sees --import, and
// worker threads or processes a test starts with its execArgv (a relay's workers) are not.
const file = process.argv[1] ?? '';
if (process.env.NODE_TEST_CONTEXT !== undefined && isMainThread && /\.test\.[cm]?js$/.test(file)) {
  const { after } = await import('node:test');
  let armed = false;
  let channelSeen = false;
  const arm = () => {
    if (armed) return;
    armed = true;
    setTimeout(() => {
      const counts = new Map();
      for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
      // The pipes to the runner (stdout/stderr) are always there and keep nothing alive.
      const pipes = counts.get('PipeWrap') ?? 0;
      if (pipes <= 2) counts.delete('PipeWrap');
      else counts.set('PipeWrap', pipes - 2);
      const held = [...counts].map(([kind, n]) => (n > 1 ? `${kind} ×${n}` : kind)).join(', ');
      process.stderr.write(
        `test-exit-guard: ${file} is still running ${TEST_EXIT_GRACE_MS / 1000} s after its tests and after() hooks finished: something it opened keeps the process alive. ` +
          (held
            ? `Active handles: ${held}. `
            : 'No JavaScript handle is active: a native add-on holds it (node-datachannel: close every PeerConnection and DataChannel and call its cleanup() in an after() hook; a browser: close it). ') +
          'Close what the file opened in its after() hooks.\n',
      );
      process.exit(KEPT_ALIVE_EXIT_CODE);
    }, TEST_EXIT_GRACE_MS).unref();
  };
  tracingChannel('node.test').subscribe({
    start() {
      channelSeen = true;
    },
    end(context) {
      if (context.name === '<root>' && context.nesting === 0) arm();
    },
    asyncStart() {},
    asyncEnd() {},
    error() {},
  });
  after(() => {
    if (!channelSeen) arm();
  });
}
