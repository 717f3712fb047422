// A second test reporter for scripts/run-tests.mjs (beside spec): one JSON line per test
// file whose process sent the summary of its verdicts (`test:summary` with its file,
// sent when the file's tests are all done and reported), and one per file the runner
// failed as a whole (its process exited non-zero or on a signal), so the runner can tell
// that every file it started reported, and why one did not.
/** @param {AsyncIterable<{ type: string, data: any }>} source */
export default async function* testFilesReporter(source) {
  for await (const { type, data } of source) {
    if (type === 'test:summary' && data.file !== undefined) {
      yield `${JSON.stringify({ summary: data.file, success: data.success, tests: data.counts?.tests })}\n`;
    } else if (type === 'test:fail' && data.nesting === 0) {
      const error = data.details?.error;
      const exitCode = error?.exitCode ?? error?.cause?.exitCode;
      const signal = error?.signal ?? error?.cause?.signal;
      if (exitCode !== undefined || signal !== undefined) yield `${JSON.stringify({ failed: data.file ?? data.name, exitCode, signal })}\n`;
    }
  }
}
