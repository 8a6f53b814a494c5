// OpenAI's and Ollama's JavaScript SDKs against the gateway, as a web app or an editor plugin
// would use them. Usage: node clients.mjs GATEWAY KEY SLOTS_URL; prints one JSON object of what
// each call gave, or {"error": ...}, for tests/integration/test_gateway_real_server.py to check.
import OpenAI from "openai";
import { Ollama } from "ollama";

// The tiny model's weights are random: `ignore_eos` (llama.cpp's) keeps a short answer from ending
// early on a sampled end-of-text token, so its length and finish reason are what was asked for.
const [gateway, key, slotsUrl] = process.argv.slice(2);
const busy = async () => (await (await fetch(slotsUrl)).json()).some(s => s.is_processing);
const failure = err => [err.status ?? err.status_code ?? null, err.constructor.name, err.code ?? null,
                        String(err.message ?? err.error ?? err)];
const out = {};

const openai = new OpenAI({baseURL: gateway + "/v1", apiKey: key, maxRetries: 0});
out.models = (await openai.models.list()).data.map(m => m.id).sort();
const chat = await openai.chat.completions.create(
  {model: "tiny", messages: [{role: "user", content: "hello"}], max_tokens: 5, ignore_eos: true});
out.chat = [chat.choices[0].finish_reason, chat.usage.completion_tokens];
const stream = await openai.chat.completions.create({model: "tiny", messages: [{role: "user", content: "hello"}],
  max_tokens: 5, ignore_eos: true, stream: true, stream_options: {include_usage: true}});
const pieces = [];
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) pieces.push(chunk.choices[0].delta.content ?? "");
  if (chunk.usage) usage = chunk.usage.completion_tokens;
}
out.stream = [pieces.length, usage];
const completion = await openai.completions.create({model: "chat", prompt: "the", max_tokens: 3, ignore_eos: true});
out.completion = completion.choices[0].finish_reason;
const vectors = await openai.embeddings.create({model: "tiny-embed", input: ["a cat", "a mat"]});
out.embeddings = vectors.data.map(d => d.embedding.length);
try { await openai.chat.completions.create({model: "nope", messages: [{role: "user", content: "x"}]}); }
catch (err) { out.unknown = failure(err); }
try { await new OpenAI({baseURL: gateway + "/v1", apiKey: "wrong", maxRetries: 0}).models.list(); }
catch (err) { out.wrong_key = failure(err); }
const abort = new AbortController();
const long = await openai.chat.completions.create({model: "tiny", messages: [{role: "user", content: "go"}],
  max_tokens: 6000, ignore_eos: true, stream: true}, {signal: abort.signal});
let seen = 0;
let busyWhileStreaming = null;
for await (const _chunk of long) {
  if (++seen === 3) { busyWhileStreaming = await busy(); abort.abort(); }
}
out.aborted = [seen, busyWhileStreaming];  // the SDK ends the loop quietly on abort

const ollama = new Ollama({host: gateway, headers: {Authorization: `Bearer ${key}`}});
out.ollama_list = (await ollama.list()).models.map(m => m.name);
const shown = await ollama.show({model: "tiny"});
out.ollama_show = [shown.details.format, shown.capabilities];
const greedy = {temperature: 0, seed: 1, num_predict: 6};
const whole = await ollama.chat({model: "tiny", messages: [{role: "user", content: "hello"}], options: greedy});
const parts = [];
for await (const part of await ollama.chat(
  {model: "tiny", messages: [{role: "user", content: "hello"}], options: greedy, stream: true})) parts.push(part);
out.ollama_chat = [whole.done_reason, whole.eval_count, parts.map(p => p.message.content).join("") === whole.message.content,
                   parts.at(-1).done, parts.at(-1).eval_count];
const generated = await ollama.generate({model: "chat", prompt: "the", options: greedy});
out.ollama_generate = [generated.done, generated.eval_count];
out.ollama_embed = (await ollama.embed({model: "tiny-embed", input: ["a cat"]})).embeddings.map(e => e.length);
try { await ollama.chat({model: "nope", messages: [{role: "user", content: "x"}]}); }
catch (err) { out.ollama_unknown = failure(err); }
const generating = await ollama.generate({model: "tiny", prompt: "go", stream: true, options: {num_predict: 6000}});
let count = 0;
let ended = "ended";  // after abort() the iteration mostly throws AbortError, and sometimes just ends
try { for await (const _part of generating) { if (++count === 3) generating.abort(); } }
catch (err) { ended = err.name; }
out.ollama_aborted = [count, ended];

console.log(JSON.stringify(out));
