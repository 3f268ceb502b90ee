// One gateway RPC a line, through OpenClaw's own client (GatewayChatClient of dist/gateway-chat-<hash>.mjs,
// the TUI's; it connects with the operator scopes the CLI has), on one long-lived connection.
//
//   node openclaw_rpc.mjs <dist/gateway-chat-<hash>.mjs> <ws://127.0.0.1:PORT> <token>
//
// Reads {"method": "sessions.delete", "params": {...}} a line on stdin and answers one JSON line:
// {"ok": true, "result": <the gateway's answer>} or {"ok": false, "error": "..."}; {"ready": true} once
// connected. Used by tools/bench_latency.py to archive (sessions.patch archived: true) and delete
// (sessions.delete deleteTranscript: true) with the very params `openclaw sessions archive|delete` sends,
// without a CLI process start (seconds on a busy machine) between a session's last event and its end.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [modulePath, url, token] = process.argv.slice(2);
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const { GatewayChatClient } = await import(pathToFileURL(modulePath).href);
const client = await GatewayChatClient.connect({ url, token });
client.start();
await Promise.race([
  client.waitForReady(),
  new Promise((_, reject) => setTimeout(() => reject(new Error("gateway not ready in 60 s")), 60_000)),
]);
emit({ ready: true });
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    const { method, params } = JSON.parse(line);
    emit({ ok: true, result: await client.client.request(method, params) });
  } catch (err) {
    emit({ ok: false, error: String(err?.stack ?? err) });
  }
}
await client.stop();
process.exit(0);
