// Progress bars on stderr: redrawn in place on a terminal, a line every few seconds otherwise (CI
// logs, pipes), so a long run always shows what it is doing and how far it got.

export interface ProgressBar {
  /** `done` out of the bar's total; `note` is a short live figure such as a rate. */
  update(done: number, note?: string): void;
  finish(summary: string): void;
}

export interface Progress {
  bar(label: string, total: number): ProgressBar;
  /** A one-line message between bars. */
  log(message: string): void;
}

const WIDTH = 28;
const LINE_INTERVAL_MS = 5_000;

export function renderBar(label: string, done: number, total: number, elapsedMs: number, note = ''): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.round(fraction * WIDTH);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(WIDTH - filled)}`;
  const percent = `${Math.floor(fraction * 100)}`.padStart(3);
  const seconds = `${(elapsedMs / 1000).toFixed(1)}s`;
  return `${label.padEnd(34)} ${bar} ${percent}% ${seconds.padStart(6)}${note ? `  ${note}` : ''}`;
}

export function createProgress(
  stream: NodeJS.WriteStream = process.stderr,
  now: () => number = Date.now,
): Progress {
  const tty = stream.isTTY === true;
  return {
    log(message) {
      stream.write(`${message}\n`);
    },
    bar(label, total) {
      const started = now();
      let lastLine = started;
      let finished = false;
      return {
        update(done, note) {
          if (finished) return;
          const t = now();
          const line = renderBar(label, done, total, t - started, note);
          if (tty) {
            stream.write(`\r\x1b[2K${line.slice(0, (stream.columns ?? 120) - 1)}`);
          } else if (t - lastLine >= LINE_INTERVAL_MS) {
            lastLine = t;
            stream.write(`${line}\n`);
          }
        },
        finish(summary) {
          if (finished) return;
          finished = true;
          const line = `${label.padEnd(34)} done in ${((now() - started) / 1000).toFixed(1)}s  ${summary}`;
          stream.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
        },
      };
    },
  };
}

/** For programmatic runs (the smoke test) that want no output. */
export const silentProgress: Progress = {
  log: () => undefined,
  bar: () => ({ update: () => undefined, finish: () => undefined }),
};
