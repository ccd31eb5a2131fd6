/**
 * A one-line progress bar on stderr: count, rate and ETA, redrawn with `\r`.
 *
 * @module
 */
import { formatCount } from "../util.ts";

/** Progress of one long loop. */
export interface Progress {
  /** Adds `n` finished items; redraws at most ten times a second. */
  tick(n?: number): void;
  /** Draws the final state and ends the line. */
  done(): void;
}

function seconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.ceil(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, "0")}s`;
}

/**
 * Progress bar for `total` items. Disabled, it only counts; when stderr is not a terminal
 * only the final line is written, so logs get no `\r` clutter.
 */
export function createProgress(label: string, total: number, enabled = true): Progress {
  const t0 = performance.now();
  const tty = enabled && Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  let count = 0, last = 0;
  const line = () => {
    const el = (performance.now() - t0) / 1000;
    const rate = count / Math.max(el, 1e-6);
    const pct = total > 0 ? Math.floor((100 * count) / total) : 100;
    const eta = count >= total ? `in ${seconds(el)}` : `ETA ${seconds((total - count) / rate)}`;
    return `${label}: ${formatCount(count)}/${formatCount(total)} (${pct}%) ` +
      `${formatCount(rate)}/s ${eta}`;
  };
  return {
    tick(n = 1) {
      count += n;
      const now = performance.now();
      if (tty && now - last > 100) {
        last = now;
        Deno.stderr.writeSync(enc.encode(`\r${line()}\x1b[K`));
      }
    },
    done() {
      if (!enabled) return;
      Deno.stderr.writeSync(enc.encode(tty ? `\r${line()}\x1b[K\n` : `${line()}\n`));
    },
  };
}
