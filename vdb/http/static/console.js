// The vdb console: collections, search and hybrid query, and answers streamed from /ask.
"use strict";

const $ = (id) => document.getElementById(id);
const keyField = $("key");
let chosen = null;

keyField.value = localStorage.getItem("vdb-key") || "";
keyField.addEventListener("change", () => {
  localStorage.setItem("vdb-key", keyField.value);
  refresh();
});

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyField.value) h.Authorization = "Bearer " + keyField.value;
  return h;
}

function say(text) {
  $("status").textContent = text || "";
}

async function api(path, body) {
  const init = { headers: headers(), method: body === undefined ? "GET" : "POST" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  if (!resp.ok) {
    let message = resp.status + " " + resp.statusText;
    try {
      message = (await resp.json()).error.message;
    } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return resp;
}

async function refresh() {
  say("");
  try {
    const data = await (await api("/v1/collections")).json();
    const list = $("collections");
    list.replaceChildren();
    for (const c of data.collections) {
      const li = document.createElement("li");
      li.dataset.name = c.name;
      li.innerHTML = "<span class=name></span><span class=count></span>";
      li.querySelector(".name").textContent = c.name;
      li.querySelector(".count").textContent = c.count.toLocaleString();
      li.addEventListener("click", () => choose(c));
      if (chosen && chosen.name === c.name) li.classList.add("chosen");
      list.append(li);
    }
    if (!chosen && data.collections.length) choose(data.collections[0]);
  } catch (e) {
    say(e.message);
  }
}

function choose(c) {
  chosen = c;
  $("current").textContent = c.name + " · " + c.count + " points · dim " + c.dim +
    (c.embedder ? " · " + c.embedder : "");
  for (const li of $("collections").children) {
    li.classList.toggle("chosen", li.dataset.name === c.name);
  }
}

function filterOf() {
  const text = $("filter").value.trim();
  if (!text) return undefined;
  return JSON.parse(text);
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen) return say("choose a collection first");
  say("");
  const q = $("query").value.trim();
  const body = { k: Number($("k").value) || 5 };
  try {
    const flt = filterOf();
    if (flt !== undefined) body.filter = flt;
    if ($("mode").value === "query") body.text = q;
    else if (q.startsWith("[")) body.vector = JSON.parse(q);
    else body.text = q;
    const path = "/v1/collections/" + encodeURIComponent(chosen.name) + "/" + $("mode").value;
    const data = await (await api(path, body)).json();
    showHits(data.hits);
  } catch (e) {
    say(e.message);
  }
});

function showHits(hits) {
  const body = $("hits").querySelector("tbody");
  body.replaceChildren();
  for (const h of hits) {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td class=id></td><td class=score></td><td><div class=doc></div><pre></pre></td>";
    tr.querySelector(".id").textContent = h.id;
    tr.querySelector(".score").textContent = h.score.toFixed(4);
    tr.querySelector(".doc").textContent = h.document || "";
    tr.querySelector("pre").textContent = h.payload ? JSON.stringify(h.payload) : "";
    body.append(tr);
  }
}

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen) return say("choose a collection first");
  say("");
  const answer = $("answer");
  answer.textContent = "";
  $("sources").replaceChildren();
  const body = { question: $("question").value, k: Number($("k").value) || 5, stream: true };
  try {
    const flt = filterOf();
    if (flt !== undefined) body.filter = flt;
    const path = "/v1/collections/" + encodeURIComponent(chosen.name) + "/ask";
    const resp = await api(path, body);
    await readEvents(resp, (name, data) => {
      if (data === "[DONE]") return;
      const value = JSON.parse(data);
      if (name === "answer") showSources(value);
      else if (name === "error") say(value.error.message);
      else answer.textContent += value.text;
    });
  } catch (e) {
    say(e.message);
  }
});

// Server-sent events from a fetch response: onEvent(name, data) for each.
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      onEvent(name, data.join("\n"));
    }
  }
}

function showSources(answer) {
  const list = $("sources");
  for (const s of answer.sources) {
    const li = document.createElement("li");
    li.value = s.number;
    const cited = answer.cited.includes(s.number) ? " (cited)" : "";
    li.innerHTML = "<div class=text></div><div class=where></div>";
    li.querySelector(".text").textContent = s.text;
    li.querySelector(".where").textContent =
      (s.source || s.file || String(s.id)) + " · score " + s.score.toFixed(4) + cited;
    list.append(li);
  }
}

$("refresh").addEventListener("click", refresh);
refresh();
