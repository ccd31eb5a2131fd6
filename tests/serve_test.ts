/**
 * The reader's server as a hostile or careless client meets it: every error carries the same
 * security headers as a page, echoes neither the path nor internal errors, and a client that
 * never finishes its headers is cut off.
 */
import assert from "node:assert/strict";
import { HEADER_TIMEOUT_S, isOwnHost, startServer } from "../tasks/serve.ts";

const SECURITY = ["content-security-policy", "x-content-type-options", "referrer-policy"];

async function server(checkpoint?: string) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/app.js`, "// bundle stand-in\n");
  const log: string[] = [];
  const s = await startServer({ port: 0, bundleDir: dir, checkpoint, log: (l) => log.push(l) });
  return { ...s, dir, log };
}

Deno.test({
  name: "serve: errors carry the security headers and echo neither path nor internals",
  sanitizeResources: false,
  fn: async () => {
    // A checkpoint "file" that is a folder makes reading it fail with an internal error.
    const run = await Deno.makeTempDir();
    await Deno.mkdir(`${run}/best.json`);
    const s = await server(run);
    const cases: [RequestInit & { path: string }, number][] = [
      [{ path: "/secret-<script>-path?q=1" }, 404],
      [{ path: "/index.html", method: "POST", body: "x" }, 405],
      [{ path: "/checkpoint/best.json" }, 500],
      [{ path: "/index.html" }, 200],
    ];
    for (const [{ path, ...init }, status] of cases) {
      const r = await fetch(new URL(path, s.url), init);
      const body = await r.text();
      assert.equal(r.status, status, path);
      for (const h of SECURITY) assert.ok(r.headers.get(h), `${status} has ${h}`);
      if (status !== 200) {
        assert.doesNotMatch(body, /secret|script|best\.json|EISDIR|directory|\/tmp/i, body);
      }
    }
    assert.ok(s.log.some((l) => /error: .*best\.json/i.test(l)), "the details go to the log");
    // A foreign Host (DNS rebinding) is refused without echoing it.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n"));
    const buf = new Uint8Array(4096);
    const n = (await conn.read(buf))!;
    const reply = new TextDecoder().decode(buf.subarray(0, n));
    conn.close();
    assert.match(reply, /^HTTP\/1\.1 421/);
    assert.match(reply, /content-security-policy/i);
    assert.doesNotMatch(reply, /evil/);
    // A client that closes its sending side after the request still gets the whole answer.
    const half = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await half.write(new TextEncoder().encode(
      `GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nConnection: close\r\n\r\n`,
    ));
    await half.closeWrite();
    let answer = "";
    for (let n; (n = await half.read(buf)) !== null;) {
      answer += new TextDecoder().decode(buf.subarray(0, n));
    }
    half.close();
    assert.match(answer, /^HTTP\/1\.1 200/);
    assert.match(answer, /<\/html>\s*$/i, "the page arrives whole");
    await s.shutdown();
    await Deno.remove(s.dir, { recursive: true });
    await Deno.remove(run, { recursive: true });
  },
});

Deno.test("serve: Host 127.0.0.1 or localhost, with the port, or without it on port 80", () => {
  assert.ok(isOwnHost("127.0.0.1:8000", 8000));
  assert.ok(isOwnHost("localhost:8000", 8000));
  assert.ok(!isOwnHost("127.0.0.1", 8000));
  assert.ok(isOwnHost("127.0.0.1", 80));
  assert.ok(isOwnHost("localhost", 80));
  assert.ok(!isOwnHost("127.0.0.1:80.evil.example", 80));
  assert.ok(!isOwnHost("evil.example:8000", 8000));
});

Deno.test({
  name: "serve: a request whose headers never finish is dropped after the timeout",
  sanitizeResources: false,
  fn: async () => {
    const s = await server();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    const started = Date.now();
    const n = await conn.read(new Uint8Array(1024)).catch(() => null);
    const waited = (Date.now() - started) / 1000;
    assert.equal(n, null, "closed without an answer");
    assert.ok(waited < HEADER_TIMEOUT_S + 5, `dropped after ${waited} s`);
    conn.close();
    // The server still answers others.
    assert.equal((await fetch(new URL("/index.html", s.url))).status, 200);
    await s.shutdown();
    await Deno.remove(s.dir, { recursive: true });
  },
});
