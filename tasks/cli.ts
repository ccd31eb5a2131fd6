/**
 * Small helpers shared by the task entry points: fatal errors, numeric options and a
 * one-line status display.
 *
 * @module
 */

/** Prints `error: message` to stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/** Parses `--name value` as a number within bounds, or exits with a message naming it. */
export function numberOption(
  name: string,
  value: string,
  { integer = false, min = -Infinity, max = Infinity }: {
    integer?: boolean;
    min?: number;
    max?: number;
  } = {},
): number {
  const n = Number(value);
  if (
    value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min ||
    n > max
  ) {
    const kind = integer ? "an integer" : "a number";
    const range = min > -Infinity
      ? (max < Infinity ? ` between ${min} and ${max}` : ` >= ${min}`)
      : "";
    fail(`--${name} must be ${kind}${range}, got "${value}"`);
  }
  return n;
}

/**
 * A status line on stderr: redrawn in place on a terminal; otherwise printed at most every
 * 30 seconds so logs stay readable.
 */
export function statusLine(): { update: (line: string) => void; clear: () => void } {
  const tty = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let shown = false;
  let lastPrint = 0;
  return {
    update(line: string) {
      if (tty) {
        Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${line}`));
        shown = true;
      } else if (performance.now() - lastPrint > 30_000) {
        console.error(line);
        lastPrint = performance.now();
      }
    },
    clear() {
      if (shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
      shown = false;
    },
  };
}
