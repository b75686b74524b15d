// ragreel's web page: ask, watch the stages live, play the video, run a spreadsheet batch.
// Plain DOM code, no build step. Every server text goes in through textContent, never as HTML.
"use strict";

const TEXT = {
  en: {
    tagline: "Ask a question; get a narrated video grounded in your documents.",
    apiDocs: "API docs", tokenLabel: "This server needs an access token", saveToken: "Use token",
    askTitle: "Ask", questionPlaceholder: "What water temperature should I use for oolong tea?",
    language: "Language", voice: "Voice", aspect: "Shape", auto: "auto",
    landscape: "landscape 16:9", portrait: "portrait 9:16", square: "square 1:1",
    answerOnly: "answer only, no video", make: "Make the video", cancel: "Cancel",
    answer: "Answer", scenes: "Scenes and their evidence", sources: "Sources", recent: "Recent videos",
    batchTitle: "A spreadsheet of questions",
    batchHint: 'CSV or Excel with a "question" column (and optional id, language, voice, aspect, title).',
    reviewOnly: "answers only, for review", runBatch: "Run the batch", row: "Row", column: "Column",
    problem: "Problem", question: "Question", state: "State",
    stage: { retrieve: "retrieve", generate: "write", speak: "speak", render: "render" },
    status: { scheduled: "waiting for a worker", running: "working", cancelling: "cancelling",
      completed: "done", failed: "failed", cancelled: "cancelled", pending: "waiting", succeeded: "done",
      skipped: "skipped" },
    failedIn: (stage) => `Failed in ${stage}: `, seconds: (s) => `${s.toFixed(0)} s`,
    video: "video", subtitles: "subtitles", thumbnail: "thumbnail", nothingYet: "No videos yet.",
    notCovered: "The knowledge base does not cover this question.",
    rowsDone: (done, all) => `${done} of ${all} rows done`, manifest: "Manifest:",
    fromCache: "from cache", badRows: "Fix these rows and upload again:",
    origin: { model: "written by the model, checked against its quote", revised: "rewritten once, then checked",
      extractive: "the source's own sentence", edited: "edited by a person, checked" },
  },
  zh: {
    tagline: "提出問題，得到一支根據你的文件講解的短片。",
    apiDocs: "API 文件", tokenLabel: "這個伺服器需要存取權杖", saveToken: "使用權杖",
    askTitle: "提問", questionPlaceholder: "高山烏龍茶要種在多高的地方？",
    language: "語言", voice: "聲音", aspect: "畫面", auto: "自動",
    landscape: "橫式 16:9", portrait: "直式 9:16", square: "方形 1:1",
    answerOnly: "只要答案，不做影片", make: "製作影片", cancel: "取消",
    answer: "答案", scenes: "段落與依據", sources: "資料來源", recent: "最近的影片",
    batchTitle: "用試算表一次問很多題",
    batchHint: "CSV 或 Excel，要有 question 欄（可另加 id、language、voice、aspect、title）。",
    reviewOnly: "只產生答案供審閱", runBatch: "開始批次", row: "列", column: "欄", problem: "問題",
    question: "問題", state: "狀態",
    stage: { retrieve: "檢索", generate: "撰稿", speak: "配音", render: "算圖" },
    status: { scheduled: "等待工作者", running: "處理中", cancelling: "取消中", completed: "完成",
      failed: "失敗", cancelled: "已取消", pending: "等待中", succeeded: "完成", skipped: "略過" },
    failedIn: (stage) => `在「${stage}」失敗：`, seconds: (s) => `${s.toFixed(0)} 秒`,
    video: "影片", subtitles: "字幕", thumbnail: "縮圖", nothingYet: "還沒有影片。",
    notCovered: "知識庫裡沒有這個問題的資料。",
    rowsDone: (done, all) => `已完成 ${done} / ${all} 列`, manifest: "清單：",
    fromCache: "取自快取", badRows: "請修正這些列後重新上傳：",
    origin: { model: "模型撰寫，已對照引文核對", revised: "重寫一次後核對", extractive: "來源原句",
      edited: "人工編修，已核對" },
  },
};

let ui = (localStorage.getItem("ragreel.ui") || navigator.language || "en").toLowerCase().startsWith("zh")
  ? "zh" : "en";
const t = () => TEXT[ui];
const $ = (id) => document.getElementById(id);
let currentJob = null;
let events = null;
let batchTimer = null;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = ui === "zh" ? "zh-Hant" : "en";
  for (const node of document.querySelectorAll("[data-t]")) {
    const value = t()[node.dataset.t];
    if (typeof value === "string") node.textContent = value;
  }
  for (const node of document.querySelectorAll("[data-tp]")) node.placeholder = t()[node.dataset.tp];
  $("ui-language").textContent = ui === "zh" ? "English" : "中文";
  if (currentJob) {
    showJob(currentJob);
    if (currentJob.status === "completed" && currentJob.result) showResult(currentJob);
  }
  loadRecent();
}

// --- talking to the API ------------------------------------------------------------------------

function authHeaders() {
  const token = localStorage.getItem("ragreel.token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) $("token-panel").hidden = false;
  let body = null;
  try { body = await response.json(); } catch (_) { /* an empty or non-JSON body */ }
  if (!response.ok) {
    const error = new Error(describeError(response.status, body));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function describeError(status, body) {
  const detail = body && body.detail;
  let text = typeof detail === "string" ? detail
    : Array.isArray(detail) ? detail.map((d) => d.msg || JSON.stringify(d)).join("; ")
      : `HTTP ${status}`;
  if (body && body.hint) text += ` (${body.hint})`;
  return text;
}

function showError(id, message) {
  const node = $(id);
  node.textContent = message || "";
  node.hidden = !message;
}

// --- one video job --------------------------------------------------------------------------

async function ask(event) {
  event.preventDefault();
  showError("ask-error", "");
  const button = $("ask-button");
  button.disabled = true;
  const body = {
    question: $("question").value,
    language: $("language").value || null,
    voice: $("voice").value,
    aspect: $("aspect").value,
    video: !$("answer-only").checked,
  };
  try {
    const created = await api("/v1/videos", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    follow(created.id);
  } catch (error) {
    showError("ask-error", error.message);
  } finally {
    button.disabled = false;
  }
}

function follow(id) {
  if (events) events.close();
  history.replaceState(null, "", `#video=${id}`);
  $("job").hidden = false;
  $("job-result").hidden = true;
  $("player").removeAttribute("src");
  // EventSource sends the token cookie (it cannot send headers).
  events = new EventSource(`/v1/videos/${id}/events`);
  events.addEventListener("status", (message) => showJob(JSON.parse(message.data)));
  events.addEventListener("end", () => { events.close(); events = null; loadRecent(); });
  events.onerror = async () => {
    // The stream ended early (an API restart, a proxy): read the state, and follow again if unfinished.
    if (events) { events.close(); events = null; }
    try {
      const job = await api(`/v1/videos/${id}`);
      showJob(job);
      if (!["completed", "failed", "cancelled"].includes(job.status)) setTimeout(() => follow(id), 3000);
    } catch (error) {
      showError("job-error", error.message);
      if (error.status === 503 || !error.status) setTimeout(() => follow(id), 5000);
    }
  };
}

function showJob(job) {
  const first = !currentJob || currentJob.id !== job.id || currentJob.status !== job.status;
  currentJob = job;
  $("job-question").textContent = job.question;
  const status = t().status[job.status] || job.status;
  const cached = job.result && job.result.cached_stages.length ? ` · ${t().fromCache}: ${job.result.cached_stages.map((s) => t().stage[s] || s).join(", ")}` : "";
  $("job-status").textContent = status + cached;
  $("stages").replaceChildren(...job.stages.map((s) => el("li", { class: s.status, text: t().stage[s.name] || s.name })));
  $("progress-bar").style.width = `${Math.round(job.progress * 100)}%`;
  $("cancel").hidden = ["completed", "failed", "cancelled"].includes(job.status);
  showError("job-error", job.error ? t().failedIn(t().stage[job.error.stage] || job.error.stage) + job.error.message : "");
  if (job.status === "completed" && job.result && first) showResult(job);
}

function showResult(job) {
  const result = job.result;
  $("job-result").hidden = false;
  const player = $("player");
  player.hidden = !job.files.video;
  if (job.files.video && player.getAttribute("src") !== job.files.video) {  // not reloaded on a language switch
    player.replaceChildren();
    player.src = job.files.video;
    if (job.files.thumbnail) player.poster = job.files.thumbnail;
    if (job.files.vtt) {
      player.append(el("track", { kind: "subtitles", src: job.files.vtt, srclang: result.language,
        label: result.language === "zh" ? "中文" : "English", default: "" }));
    }
  }
  const links = [];
  if (job.files.video) links.push(el("a", { href: job.files.video, download: "", text: `${t().video} (MP4, ${t().seconds(result.video_seconds || 0)})` }));
  if (job.files.srt) links.push(el("a", { href: job.files.srt, download: "", text: `${t().subtitles} (SRT)` }));
  if (job.files.vtt) links.push(el("a", { href: job.files.vtt, download: "", text: `${t().subtitles} (WebVTT)` }));
  if (job.files.thumbnail) links.push(el("a", { href: job.files.thumbnail, text: t().thumbnail }));
  $("downloads").replaceChildren(...links);
  $("answer").textContent = result.covered ? result.answer : `${t().notCovered} ${result.answer}`;
  $("scenes").replaceChildren(...result.scenes.map((scene) => el("li", {},
    el("div", { class: "key-point", text: scene.key_point || "" }),
    el("div", { text: scene.narration }),
    ...scene.evidence.map((e) => el("blockquote", { text: `[${e.passage}] ${e.quote}` })),
    el("div", { class: "origin", text: t().origin[scene.origin] || scene.origin }))));
  $("sources").replaceChildren(...result.sources.map((c) => el("li", { value: String(c.number) },
    el("strong", { text: c.title }),
    ` (${c.source}${c.heading ? " › " + c.heading : ""}${c.page ? ", p. " + c.page : ""})`,
    el("blockquote", { text: c.text }))));
}

async function cancelJob() {
  if (!currentJob) return;
  try { showJob(await api(`/v1/videos/${currentJob.id}`, { method: "DELETE" })); }
  catch (error) { showError("job-error", error.message); }
}

async function loadRecent() {
  let jobs;
  try { jobs = await api("/v1/videos?limit=10"); } catch (_) { return; }
  const items = jobs.map((job) => {
    const thumb = job.files.thumbnail ? el("img", { src: job.files.thumbnail, alt: "" }) : el("span", { class: "thumb-empty" });
    const link = el("a", { href: `#video=${job.id}`, text: job.question });
    link.addEventListener("click", (event) => { event.preventDefault(); follow(job.id); });
    return el("li", {}, thumb, link, el("span", { class: `badge ${job.status}`, text: t().status[job.status] || job.status }));
  });
  $("recent").replaceChildren(...(items.length ? items : [el("li", { text: t().nothingYet })]));
}

// --- batches ----------------------------------------------------------------------------------

async function runBatch(event) {
  event.preventDefault();
  showError("batch-error", "");
  $("batch-problems").hidden = true;
  const form = new FormData();
  form.append("spreadsheet", $("spreadsheet").files[0]);
  form.append("video", String(!$("batch-answer-only").checked));
  try {
    const created = await api("/v1/batches", { method: "POST", body: form });
    followBatch(created.id);
  } catch (error) {
    if (error.status === 422 && Array.isArray(error.body && error.body.detail) && error.body.detail[0].row) {
      showError("batch-error", t().badRows);
      $("batch-problems").querySelector("tbody").replaceChildren(...error.body.detail.map((p) =>
        el("tr", {}, el("td", { text: String(p.row) }), el("td", { text: p.column }), el("td", { text: p.msg }))));
      $("batch-problems").hidden = false;
    } else {
      showError("batch-error", error.message);
    }
  }
}

function followBatch(id) {
  clearInterval(batchTimer);
  $("batch-job").hidden = false;
  const poll = async () => {
    let batch;
    try { batch = await api(`/v1/batches/${id}`); } catch (error) { showError("batch-error", error.message); return; }
    const done = batch.rows.filter((r) => !["pending", "running"].includes(r.status)).length;
    $("batch-status").textContent = `${t().status[batch.status] || batch.status} · ${t().rowsDone(done, batch.rows.length)}`;
    $("batch-progress-bar").style.width = `${Math.round(batch.progress * 100)}%`;
    $("batch-rows").replaceChildren(...batch.rows.map((row) => el("tr", {},
      el("td", { text: row.id }), el("td", { text: row.question }),
      el("td", { text: (t().status[row.status] || row.status) + (row.error ? `: ${row.error}` : "") }),
      el("td", {}, row.video ? el("a", { href: row.video, text: t().video }) : ""))));
    const kinds = Object.entries(batch.manifest);
    $("batch-manifest").replaceChildren(...(kinds.length ? [t().manifest, " ", ...kinds.map(([kind, url]) =>
      el("a", { href: url, download: "", text: kind.toUpperCase() }))] : []));
    if (["completed", "failed", "cancelled"].includes(batch.status)) clearInterval(batchTimer);
  };
  poll();
  batchTimer = setInterval(poll, 2000);
}

// --- start ------------------------------------------------------------------------------------

function setTokenCookie(token) {
  // Video, subtitle, image and event-stream requests cannot carry a header: they send this cookie
  // (the API takes it for reading only; making jobs needs the header).
  document.cookie = `ragreel_token=${encodeURIComponent(token)}; path=/; SameSite=Strict; max-age=31536000`;
}

function saveToken() {
  const token = $("token").value.trim();
  localStorage.setItem("ragreel.token", token);
  setTokenCookie(token);
  $("token-panel").hidden = true;
  loadRecent();
}

document.addEventListener("DOMContentLoaded", () => {
  const token = localStorage.getItem("ragreel.token");
  if (token) setTokenCookie(token);  // a browser restart ends the cookie, not the stored token
  $("ask").addEventListener("submit", ask);
  $("batch").addEventListener("submit", runBatch);
  $("cancel").addEventListener("click", cancelJob);
  $("save-token").addEventListener("click", saveToken);
  $("ui-language").addEventListener("click", () => {
    ui = ui === "zh" ? "en" : "zh";
    localStorage.setItem("ragreel.ui", ui);
    applyLanguage();
  });
  applyLanguage();
  const linked = location.hash.match(/^#video=([0-9a-f-]{36})$/);
  if (linked) follow(linked[1]);
});
