// Drive OpenClaw's gateway with OpenClaw's own chat client (GatewayChatClient, as its TUI and WebChat do):
// the CHAT path (`chat.send`) and plain gateway requests, several at once (tools/openclaw/live.py sends a
// message while a turn runs).
//
//   node chat.mjs <dist/gateway-chat-<hash>.mjs> <ws://127.0.0.1:PORT> <token>
//
// Reads one JSON request a line on stdin and answers each with one JSON line on stdout carrying its "id",
// in the order they end (requests run concurrently):
//   {"id": N, "key": "agent:<id>:<rest>", "message": "...", "timeoutMs": N}   chat.send, answered once the
//       run's terminal `chat` event (state final / error / aborted) arrived:
//       {"id", "ok": true, "runId", "state", "ack": <chat.send's answer>, "text": <reply text>}
//   {"id": N, "rpc": "sessions.patch", "params": {...}}   one gateway request: {"id", "ok": true, "result"}
// or {"id", "ok": false, "error": "..."}. Prints {"ready": true} once connected. Used by
// tools/openclaw/fixture.py (``_ChatClient``); run with the Node that runs OpenClaw and OpenClaw's own
// environment (OPENCLAW_STATE_DIR, OPENCLAW_CONFIG_PATH, HOME...).
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [modulePath, url, token] = process.argv.slice(2);
const TERMINAL = new Set(["final", "error", "aborted"]);

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function textOf(message) {
  if (!message || typeof message !== "object") return "";
  const content = message.content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((part) => part?.text ?? "").join("");
  return "";
}

const terminal = new Map(); // runId -> payload of its terminal chat event
const waiting = new Map(); // runId -> resolve
let broken = null;

const { GatewayChatClient } = await import(pathToFileURL(modulePath).href);
const client = await GatewayChatClient.connect({ url, token });
client.onEvent = (evt) => {
  if (evt.event !== "chat" || !evt.payload || !TERMINAL.has(evt.payload.state)) return;
  const runId = evt.payload.runId;
  terminal.set(runId, evt.payload);
  waiting.get(runId)?.(evt.payload);
};
const fail = (why) => {
  broken = why;
  for (const resolve of waiting.values()) resolve(null);
};
client.onConnectError = (err) => fail(`connect error: ${err?.message ?? err}`);
client.onDisconnected = (reason) => fail(`disconnected: ${reason}`);
client.start();
await Promise.race([
  client.waitForReady(),
  new Promise((_, reject) => setTimeout(() => reject(new Error("gateway not ready in 60 s")), 60_000)),
]);
if (broken) throw new Error(broken);

function terminalEvent(runId, timeoutMs) {
  if (terminal.has(runId)) return Promise.resolve(terminal.get(runId));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    waiting.set(runId, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

async function handle(request) {
  const runId = randomUUID();
  const timeoutMs = request.timeoutMs ?? 300_000;
  const ack = await client.sendChat({ sessionKey: request.key, message: request.message, deliver: false, runId });
  const accepted = ack.runId ?? runId;
  const event = await terminalEvent(accepted, timeoutMs);
  waiting.delete(accepted);
  if (event === null) return { ok: false, runId: accepted, ack, error: broken };
  if (event === undefined) {
    return { ok: false, runId: accepted, ack, error: `no terminal chat event in ${timeoutMs} ms` };
  }
  return {
    ok: event.state === "final",
    runId: accepted,
    state: event.state,
    ack,
    text: textOf(event.message),
    ...(event.errorMessage ? { error: event.errorMessage } : {}),
  };
}

async function dispatch(request) {
  if (request.rpc) return { ok: true, result: await client.client.request(request.rpc, request.params ?? {}) };
  return await handle(request);
}

emit({ ready: true });
const running = new Set();
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch (err) {
    emit({ ok: false, error: String(err) });
    continue;
  }
  const task = dispatch(request)
    .then((answer) => emit({ id: request.id, ...answer }))
    .catch((err) => emit({ id: request.id, ok: false, error: String(err?.stack ?? err) }))
    .finally(() => running.delete(task));
  running.add(task);
}
await Promise.allSettled([...running]);
await client.stop();
process.exit(0);
