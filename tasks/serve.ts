/**
 * `deno task serve`: the bone-age reader as a web page on this machine only.
 *
 *     deno task serve [--checkpoint RUN_DIR] [--port 8000]
 *
 * The server binds 127.0.0.1 and answers only GET and HEAD for a fixed set of files: the
 * page (`web/`), its bundle (`deno task bundle`, run first by `deno task serve`), the
 * kernels (`kernels/`, its `generated/` and `include/` folders, as they are), the image
 * decoders' wasm and the checkpoint's `best.json` and `best.safetensors`. It has no route
 * that accepts data, so the radiograph, which the page reads locally, has nowhere to go; a
 * Content-Security-Policy keeps the page from talking to any other origin. Every request is
 * logged, one line each.
 *
 * @module
 */
import { extname, join } from "node:path";
import { KEYPOINT_FILES } from "../src/app/keypoints.ts";
import { KEYPOINT_DIR } from "../src/data/recipe.ts";
import { RUN_FILES } from "../src/app/checkpoint.ts";
import { DEFAULT_BUNDLE_DIR, ROOT } from "./bundle.ts";
import { fail, numberOption, parseCommandLine, SHIPPED_CHECKPOINT, type TaskHelp } from "./cli.ts";
import { NOT_A_DEVICE } from "../src/app/wording.ts";

/** `deno task serve --help`. */
export const HELP: TaskHelp = {
  usage: "deno task serve [--checkpoint RUN_DIR] [--port 8000]",
  about: `Builds the reader page (deno task bundle) and serves it on http://127.0.0.1:PORT/ only.
The page runs RUN_DIR's best checkpoint with WebGPU in the browser: the radiograph never
leaves the machine. --checkpoint defaults to the shipped weights/. Ctrl-C stops the server.`,
  examples: ["deno task serve --checkpoint runs/example --port 8000"],
};

/** The only address the server listens on. */
export const HOSTNAME = "127.0.0.1";

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Run folder whose `best` checkpoint the page loads; without it the page says so. */
  checkpoint?: string;
  /** Folder of the built bundle (default `.cache/web/`). */
  bundleDir?: string;
  /** Receives one line per request (default: stdout). */
  log?: (line: string) => void;
}

/** A running server. */
export interface RunningServer {
  /** The page's address, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** The port it listens on. */
  port: number;
  /** Stops listening and waits for open requests to finish. */
  shutdown(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wgsl": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".safetensors": "application/octet-stream",
};

/**
 * The page may load only from this server (scripts, styles, fetches), and compile the
 * decoders' WebAssembly; images it draws come from canvases and `data:`. `form-action` and
 * `connect-src 'self'` leave no way to send anything elsewhere.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Kernel file names as the engine asks for them; anything else is not served. */
const KERNEL_NAME = /^(?:(?:generated|include)\/)?[a-z0-9_]+\.wgsl$/;

/**
 * Lists `kernels/*.wgsl` with the generated kernels and the included snippets (the page
 * preloads all of them; see `src/app/browser/kernels.ts`).
 */
function kernelIndex(): string[] {
  return ["", "generated/", "include/"].flatMap((folder) =>
    [...Deno.readDirSync(join(ROOT, "kernels", folder))]
      .filter((e) => e.isFile && KERNEL_NAME.test(folder + e.name))
      .map((e) => folder + e.name)
  ).sort();
}

/** URL path -> file on disk, for every file the server will ever send. */
function routeTable(bundleDir: string, checkpoint: string | undefined): Map<string, string> {
  const routes = new Map<string, string>([
    ["/", join(ROOT, "web", "index.html")],
    ["/index.html", join(ROOT, "web", "index.html")],
    ["/style.css", join(ROOT, "web", "style.css")],
    ["/app.js", join(bundleDir, "app.js")],
    ["/app.js.map", join(bundleDir, "app.js.map")],
    [
      "/vendor/imagescript/any/jpeg.wasm",
      join(bundleDir, "vendor", "imagescript", "any", "jpeg.wasm"),
    ],
    [
      "/vendor/imagescript/any/png.wasm",
      join(bundleDir, "vendor", "imagescript", "any", "png.wasm"),
    ],
  ]);
  for (const name of kernelIndex()) routes.set(`/kernels/${name}`, join(ROOT, "kernels", name));
  if (checkpoint) {
    routes.set("/checkpoint/best.json", join(checkpoint, RUN_FILES.meta("best")));
    routes.set("/checkpoint/best.safetensors", join(checkpoint, RUN_FILES.weights("best")));
    // A registered model's keypoint checkpoint (absent for an unregistered one: a 404).
    for (const file of Object.values(KEYPOINT_FILES)) {
      routes.set(`/checkpoint/${KEYPOINT_DIR}/${file}`, join(checkpoint, KEYPOINT_DIR, file));
    }
  }
  return routes;
}

/**
 * Whether a request's Host header names this server: 127.0.0.1 or localhost with its port,
 * or without one when the port is HTTP's default, 80. A page elsewhere that rebinds a DNS name
 * to 127.0.0.1 sends its own name, and is refused.
 */
export function isOwnHost(host: string, port: number): boolean {
  const names = [HOSTNAME, "localhost"];
  return names.some((n) => host === `${n}:${port}` || (port === 80 && host === n));
}

/** Headers of every response, errors included. */
const SECURITY_HEADERS = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  // The checkpoint can be replaced between page loads, and nothing here is large.
  "cache-control": "no-store",
};

/** A short answer with the security headers; its text never echoes the request. */
function answer(
  status: number,
  body: string,
  type = "text/plain; charset=utf-8",
  extra: Record<string, string> = {},
): Response {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": type, ...extra },
  });
}

/** Seconds a client has to send its first request's headers. */
export const HEADER_TIMEOUT_S = 10;
/** Seconds a connection may carry no byte either way before it is closed. */
export const IDLE_TIMEOUT_S = 60;

/** Reads from `conn` into `buf`, or null once `ms` pass first. */
async function readWithin(conn: Deno.Conn, buf: Uint8Array, ms: number): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((r) => timer = setTimeout(() => r(null), Math.max(0, ms)));
  try {
    return await Promise.race([conn.read(buf), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Deno.serve waits for headers forever, so a client that never finishes them would hold a
 * connection for good. The public port is therefore a small relay: it reads a connection's
 * first request headers within {@link HEADER_TIMEOUT_S}, then copies bytes both ways between
 * it and the HTTP server on a private loopback port, until either side closes or the
 * connection has been silent for {@link IDLE_TIMEOUT_S}.
 */
function relay(listener: Deno.Listener, target: number): Promise<void> {
  const handle = async (client: Deno.Conn) => {
    let server: Deno.Conn | null = null;
    let idle: ReturnType<typeof setInterval> | undefined;
    try {
      const head: Uint8Array[] = [];
      let headBytes = 0, seen = "";
      const deadline = Date.now() + HEADER_TIMEOUT_S * 1000;
      while (!seen.includes("\r\n\r\n")) {
        const buf = new Uint8Array(8192);
        const n = await readWithin(client, buf, deadline - Date.now());
        if (n === null || headBytes > 64 * 1024) return; // too slow, closed, or too large
        head.push(buf.subarray(0, n));
        headBytes += n;
        seen = seen.slice(-3) + new TextDecoder().decode(buf.subarray(0, n));
      }
      const upstream = server = await Deno.connect({ hostname: HOSTNAME, port: target });
      for (const chunk of head) {
        for (let at = 0; at < chunk.length;) at += await upstream.write(chunk.subarray(at));
      }
      let last = Date.now();
      const copy = async (from: Deno.Conn, to: Deno.Conn) => {
        const buf = new Uint8Array(64 * 1024);
        for (let n; (n = await from.read(buf)) !== null;) {
          last = Date.now();
          for (let at = 0; at < n;) at += await to.write(buf.subarray(at, n));
        }
      };
      idle = setInterval(() => {
        if (Date.now() - last > IDLE_TIMEOUT_S * 1000) {
          client.close();
          upstream.close();
        }
      }, 1000);
      const down = copy(upstream, client);
      // A client may stop sending before its answer has come: keep the answer coming (not
      // passed on as a half-close, which makes Deno.serve drop the connection unanswered).
      const up = copy(client, upstream).then(() => down);
      await Promise.race([up, down]);
    } catch {
      /* a reset or a closed connection ends the relay */
    } finally {
      clearInterval(idle);
      for (const conn of [client, server]) {
        try {
          conn?.close();
        } catch { /* already closed */ }
      }
    }
  };
  return (async () => {
    try {
      for await (const conn of listener) handle(conn);
    } catch { /* the listener was closed */ }
  })();
}

/** Starts the server (see the module doc) and resolves once it listens. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const bundleDir = options.bundleDir ?? DEFAULT_BUNDLE_DIR;
  const log = options.log ?? ((line: string) => console.log(line));
  try {
    await Deno.stat(join(bundleDir, "app.js"));
  } catch {
    throw new Error(`the page is not built: ${bundleDir}/app.js is missing (run deno task bundle)`);
  }
  const routes = routeTable(bundleDir, options.checkpoint);
  const kernels = JSON.stringify(kernelIndex());
  let port = options.port;

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    // Only our own names for this machine: a page elsewhere that rebinds a DNS name to
    // 127.0.0.1 must not be able to read the checkpoint through the visitor's browser.
    const host = request.headers.get("host") ?? "";
    if (!isOwnHost(host, port)) {
      return answer(421, `unknown host: open http://${HOSTNAME}:${port}/\n`);
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return answer(405, "this server only sends files\n", undefined, { allow: "GET, HEAD" });
    }
    if (url.pathname === "/kernels/index.json") {
      return answer(200, kernels, TYPES[".json"]);
    }
    const file = routes.get(url.pathname);
    if (!file) {
      if (url.pathname.startsWith("/checkpoint/") && !options.checkpoint) {
        return answer(404, "no checkpoint: start the server with --checkpoint RUN_DIR\n");
      }
      return answer(404, "not found\n");
    }
    let body: Uint8Array;
    try {
      body = await Deno.readFile(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        return answer(404, "not found (the file is missing on the server)\n");
      }
      throw err;
    }
    return new Response(request.method === "HEAD" ? null : body as Uint8Array<ArrayBuffer>, {
      headers: {
        ...SECURITY_HEADERS,
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "content-length": String(body.length),
      },
    });
  };

  const listener = Deno.listen({ hostname: HOSTNAME, port: options.port });
  port = (listener.addr as Deno.NetAddr).port;
  const server = Deno.serve(
    { hostname: HOSTNAME, port: 0, onListen: () => {} },
    async (request) => {
      const started = performance.now();
      let response: Response;
      try {
        response = await handle(request);
      } catch (err) {
        // The details go to the server's log, not to the client.
        log(`error: ${(err as Error).message}`);
        response = answer(500, "server error\n");
      }
      const { pathname, search } = new URL(request.url);
      log(
        `${new Date().toISOString()} ${request.method} ${pathname}${search} ${response.status} ` +
          `${response.headers.get("content-length") ?? "-"} ${
            (performance.now() - started).toFixed(0)
          }ms`,
      );
      return response;
    },
  );
  const relaying = relay(listener, server.addr.port);
  return {
    url: `http://${HOSTNAME}:${port}/`,
    port,
    shutdown: async () => {
      listener.close();
      await server.shutdown();
      await relaying;
    },
  };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(args, {
    checkpoint: { type: "string", default: SHIPPED_CHECKPOINT },
    port: { type: "string", default: "8000" },
  }, HELP);
  const port = numberOption("port", values.port!, { integer: true, min: 0, max: 65535 });
  const checkpoint = values.checkpoint;
  let note = "no checkpoint: the page will ask for one (pass --checkpoint RUN_DIR)";
  if (checkpoint) {
    const metaPath = join(checkpoint, RUN_FILES.meta("best"));
    let meta;
    try {
      meta = JSON.parse(await Deno.readTextFile(metaPath));
      await Deno.stat(join(checkpoint, RUN_FILES.weights("best")));
    } catch (err) {
      fail(
        `--checkpoint ${checkpoint}: cannot read its best checkpoint (${
          (err as Error).message
        }); train one first: deno task train --out ${checkpoint}`,
      );
    }
    note = `checkpoint ${checkpoint}: "${meta?.config?.name}" model, validation MAE ${
      Number(meta?.valMae).toFixed(1)
    } months`;
  }
  let server: RunningServer;
  try {
    server = await startServer({ port, checkpoint });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) fail(`port ${port} is in use: pass --port N`);
    fail((err as Error).message);
  }
  console.log(`Bone age reader: ${server.url}  (this machine only; Ctrl-C stops it)`);
  console.log(note);
  console.log(NOT_A_DEVICE);
  console.log("Requests:");
}

if (import.meta.main) await main(Deno.args);
