/**
 * Small helpers shared by the task entry points: fatal errors, numeric options and a
 * one-line status display.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Prints `error: message` to stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/**
 * Turns an error that escaped a task into `fail`; a Deno permission refusal gets a hint,
 * since the tasks may write only to their run folders and the data cache.
 */
export function failWith(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    fail(
      `${message}\nThe deno tasks may write only under runs/ and data/ (predict: inside this folder). ` +
        "Choose a path there, or run the script with your own flags, e.g. " +
        "deno run --allow-read --allow-write=DIR --allow-env tasks/train.ts ...",
    );
  }
  fail(message);
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

/** Runs a task's `main` with the command line, turning any error into {@link failWith}. */
export async function runTask(main: (args: string[]) => Promise<void>): Promise<void> {
  try {
    await main(Deno.args);
  } catch (err) {
    failWith(err);
  }
}

/**
 * `parseArgs` with two fixes for people typing commands: `--age -5` is read as the value -5
 * (so range checks can say what is wrong, instead of "ambiguous argument"), and a parse
 * error exits with the message and the usage line.
 */
export function parseCommandLine<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  usage: string,
  allowPositionals = false,
) {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith("--") && !a.includes("=") && /^-\d/.test(args[i + 1] ?? "")) {
      joined.push(`${a}=${args[++i]}`);
    } else joined.push(a);
  }
  try {
    return parseArgs({ args: joined, options, allowPositionals, strict: true });
  } catch (err) {
    return fail(`${(err as Error).message}\n${usage}`);
  }
}
