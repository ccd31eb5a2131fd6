/**
 * Small helpers shared by the task entry points: fatal errors, numeric options and a
 * one-line status display.
 *
 * @module
 */
import { basename } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { KERNEL_POLICIES, type KernelPolicy } from "../src/engine/engine.ts";

/**
 * The `--checkpoint` of predict, eval and serve when none is given: the bone-age checkpoint
 * committed under `weights/`, with its keypoint checkpoint in `weights/keypoints/`.
 */
export const SHIPPED_CHECKPOINT = "weights";

/** Prints `error: message` to stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/**
 * Turns an error that escaped a task into `fail`. A refused write gets the exact `deno run`
 * line that grants it: the task's own flags from `deno.json`, with that path added.
 */
export function failWith(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    const path = /Requires write access to "([^"]+)"/.exec(message)?.[1];
    const grant = path === undefined ? null : grantingCommand(path);
    if (grant) {
      fail(
        `${message}\nThe deno tasks write only under runs/ and data/. Choose a path there, or ` +
          `grant this one yourself (from the project folder):\n  ${grant}`,
      );
    }
  }
  fail(message);
}

/** Quotes an argument for a POSIX shell when it needs it. */
const shellQuote = (a: string) =>
  /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`;

/**
 * The command line that reruns this task with write access to `path` as well: the task's
 * command in `deno.json` (found by the script's name), `--allow-write` extended, and the
 * arguments given. Null when the task has no entry there.
 */
export function grantingCommand(path: string, args: readonly string[] = Deno.args): string | null {
  const script = basename(new URL(Deno.mainModule).pathname);
  let command: string | undefined;
  try {
    const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
    command = (Object.values(config.tasks ?? {}) as { command?: string }[])
      .map((t) => t.command?.split("&&").at(-1)?.trim())
      .find((c) => c?.endsWith(`tasks/${script}`));
  } catch {
    return null;
  }
  if (!command) return null;
  const widened = command.replace(
    /--allow-write=(\S+)/,
    (_, dirs) => `--allow-write=${dirs},${shellQuote(path)}`,
  );
  return [widened, ...args.map(shellQuote)].join(" ");
}

/** Parses `--kernels` (see `KernelPolicy` in `src/engine/engine.ts`), or exits naming the choices. */
export function kernelsOption(value: string): KernelPolicy {
  if (!(KERNEL_POLICIES as readonly string[]).includes(value)) {
    fail(`--kernels must be one of ${KERNEL_POLICIES.join(", ")}, got "${value}"`);
  }
  return value as KernelPolicy;
}

/** What `--help` prints for a task. */
export interface TaskHelp {
  /** The usage line after `usage: `. */
  usage: string;
  /** What the task does, in a few sentences. */
  about: string;
  /** Commands that work as written on a fresh clone, in order (a test runs every one). */
  examples: string[];
}

/** `usage: ...`, the description, and the examples, one per line after `Examples:`. */
export function formatHelp({ usage, about, examples }: TaskHelp): string {
  return `usage: ${usage}\n\n${about}\n\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}`;
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
 * `parseArgs` with three things people typing commands need: `--help` / `-h` prints the
 * task's {@link TaskHelp} and exits; `--age -5` is read as the value -5 (so range checks can
 * say what is wrong, instead of "ambiguous argument"); a parse error exits with the message
 * and the usage line.
 */
export function parseCommandLine<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  help: TaskHelp,
  allowPositionals = false,
) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(formatHelp(help));
    Deno.exit(0);
  }
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
    return fail(`${(err as Error).message}\nusage: ${help.usage} (--help for more)`);
  }
}
