// The search page and the media page: plain DOM, no build step. Text from the API is put in
// with textContent only (never innerHTML), so a transcript cannot inject markup.
(function () {
  "use strict";
  const KEY = "mediaintel_api_key";
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function clock(s) {
    if (s === null || s === undefined) return "";
    const m = Math.floor(s / 60), r = s - 60 * m;
    return `${m}:${r < 10 ? "0" : ""}${r.toFixed(1)}`;
  }

  function span(a, b) { return a === null || a === undefined ? "" : `${clock(a)}–${clock(b)}`; }

  // The text with the matched words wrapped in <mark> (whole words, any case).
  function highlighted(text, words) {
    const out = el("span", {});
    if (!text) return out;
    const esc = (words || []).filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    if (!esc.length) { out.textContent = text; return out; }
    const re = new RegExp(`(?<![\\p{L}\\p{N}_])(${esc.join("|")})(?![\\p{L}\\p{N}_])`, "giu");
    let last = 0;
    for (const m of text.matchAll(re)) {
      out.append(text.slice(last, m.index), el("mark", {}, m[0]));
      last = m.index + m[0].length;
    }
    out.append(text.slice(last));
    return out;
  }

  function saveKey(key) {
    localStorage.setItem(KEY, key);
    document.cookie = `${KEY}=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
  }

  async function api(path) {
    const headers = {};
    const key = localStorage.getItem(KEY);
    if (key) headers["X-API-Key"] = key;
    const r = await fetch(path, { headers });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      if (r.status === 401 || r.status === 403) $("key-box").hidden = false;
      const msg = body && body.error ? body.error.message : `HTTP ${r.status}`;
      const err = new Error(msg); err.status = r.status; err.body = body;
      throw err;
    }
    return body;
  }

  function keyBox(retry) {
    $("key-save").addEventListener("click", () => { saveKey($("api-key").value.trim()); $("key-box").hidden = true; retry(); });
  }

  function basename(uri) { return (uri || "").split("/").pop(); }

  // ---- the search page ------------------------------------------------------------------
  function searchPage() {
    const params = new URLSearchParams(location.search);
    let page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    $("q").value = params.get("q") || "";
    if (params.get("mode")) $("mode").value = params.get("mode");
    const k = 10;

    async function run(push) {
      const q = $("q").value.trim();
      if (!q) return;
      const mode = $("mode").value;
      if (push) history.pushState({}, "", `/?${new URLSearchParams({ q, mode, page })}`);
      $("status").textContent = "searching…";
      $("results").replaceChildren(); $("notes").replaceChildren();
      const t0 = performance.now();
      let res;
      try {
        res = await api(`/v1/search?${new URLSearchParams({ q, mode, k, page })}`);
      } catch (e) { $("status").textContent = e.message; return; }
      const ms = Math.round(performance.now() - t0);
      $("status").textContent = `${res.hits.length} hit(s) on page ${res.page} of ${res.candidates} candidate(s), ${ms} ms`;
      for (const n of res.notes || []) $("notes").append(el("li", {}, n));
      for (const h of res.hits) $("results").append(hitItem(h));
      $("pager").hidden = !(res.page > 1 || res.hits.length === k);
      $("prev").disabled = res.page <= 1; $("next").disabled = res.hits.length < k;
      $("page-no").textContent = `page ${res.page}`;
    }

    function hitItem(h) {
      const thumb = h.keyframe_url
        ? el("img", { class: "thumb", src: h.keyframe_url, alt: `keyframe of scene ${h.scene_index}`, loading: "lazy" })
        : el("div", { class: "thumb-none" }, h.item_kind === "segment" ? "speech" : "no picture");
      return el("li", { class: "hit", dataset: { mediaId: h.media_id, kind: h.item_kind } },
        el("a", { href: h.play_url, class: "thumb-link" }, thumb),
        el("div", {},
          el("a", { href: h.play_url, class: "title" }, basename(h.source_uri) || h.media_id),
          el("div", { class: "meta" },
            el("span", { class: "time" }, span(h.start_s, h.end_s)), " · ", h.item_kind, " · score ",
            h.score.toFixed(4), " ", ...h.matched.map((x) => el("span", { class: "badge" }, x))),
          el("p", { class: "text" }, highlighted(h.text, h.matched_words))));
    }

    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); page = 1; run(true); });
    $("prev").addEventListener("click", () => { page = Math.max(1, page - 1); run(true); });
    $("next").addEventListener("click", () => { page += 1; run(true); });
    window.addEventListener("popstate", () => location.reload());
    keyBox(() => run(false));
    run(false);
  }

  // ---- the media page -------------------------------------------------------------------
  function startSecond() {
    const m = /(?:^|[#&?])t=([0-9.]+)/.exec(location.hash || location.search);
    return m ? parseFloat(m[1]) : 0;
  }

  function mediaPage() {
    const id = location.pathname.split("/").filter(Boolean).pop();
    let player = null;

    function seek(t) {
      if (!player) return;
      player.currentTime = t;
      if (player.paused) player.play().catch(() => {});
    }

    async function load() {
      let d;
      try { d = await api(`/v1/media/${encodeURIComponent(id)}`); } catch (e) { $("status").textContent = e.message; return; }
      const md = d.media;
      document.title = `${basename(md.source_uri)} - mediaintel`;
      $("title").textContent = basename(md.source_uri) || id;
      $("facts").textContent = [md.kind, md.container, md.duration_s ? `${md.duration_s.toFixed(1)} s` : null,
        md.width ? `${md.width}×${md.height}` : null, md.video_codec, md.audio_codec, `media_id ${id}`]
        .filter(Boolean).join(" · ");
      const t = startSecond();
      if (d.file_url && md.kind !== "image") {
        player = el(md.has_video ? "video" : "audio", { id: "player-media", controls: "", preload: "auto", src: d.file_url });
        const go = () => { if (t > 0) player.currentTime = t; };
        if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, { once: true });
        player.addEventListener("timeupdate", () => mark(player.currentTime));
        $("player").append(player);
      } else if (d.scenes.length && d.scenes[0].keyframe_url) {
        $("player").append(el("img", { src: d.scenes[0].keyframe_url, alt: "the image" }));
      } else {
        $("player").append(el("p", { class: "meta" }, "The original file is not readable from this server."));
      }
      for (const s of d.scenes) {
        $("shots").append(el("li", { dataset: { start: s.start_s, end: s.end_s }, onclick: () => seek(s.start_s) },
          s.keyframe_url ? el("img", { src: s.keyframe_url, alt: `scene ${s.scene_index}`, loading: "lazy" }) : null,
          el("div", { class: "meta" }, `#${s.scene_index} `, el("span", { class: "time" }, span(s.start_s, s.end_s)),
            s.transition && s.transition !== "start" ? ` · ${s.transition}` : ""),
          s.ocr_text ? el("div", {}, s.ocr_text) : null));
      }
      for (const seg of d.transcript) {
        $("transcript").append(el("li", { dataset: { start: seg.start_s, end: seg.end_s }, onclick: () => seek(seg.start_s) },
          el("span", { class: "time" }, span(seg.start_s, seg.end_s)), " ", seg.text || ""));
      }
      if (!d.transcript.length) $("transcript").append(el("li", { class: "meta" }, "no speech"));
      for (const o of d.ocr) $("ocr").append(el("li", {}, `scene ${o.scene_index}: `, o.text || ""));
      for (const x of d.near_duplicates) {
        const other = x.media_id === id ? x.duplicate_of : x.media_id;
        $("dups").append(el("li", {}, el("a", { href: `/media/${other}` }, other), ` ${x.method} ${x.relation || ""} score ${x.score}`));
      }
      if (!d.near_duplicates.length) $("dups").append(el("li", { class: "meta" }, "none found"));
      for (const s of d.sources) $("sources").append(el("li", {}, s.source_uri, ` (seen ${s.seen_at})`));
      for (const a of d.audit) {
        $("audit").tBodies[0].append(el("tr", {}, ...[a.at, a.asset, a.status, a.model_id, a.rows, a.code_version]
          .map((v) => el("td", {}, v === null || v === undefined ? "" : String(v)))));
      }
      if (d.quarantine.length) {
        $("quarantine-box").hidden = false;
        for (const q of d.quarantine) $("quarantine").append(el("li", {}, `${q.stage}: ${q.error_type}: ${q.message}`));
      }
      mark(t);
      $("status").textContent = "";
      try {
        const sim = await api(`/v1/media/${encodeURIComponent(id)}/similar?k=5`);
        for (const s of sim.media) $("similar").append(el("li", {}, el("a", { href: s.media_url }, basename(s.source_uri) || s.media_id), ` score ${s.score}`));
        if (!sim.media.length) $("similar").append(el("li", { class: "meta" }, "none"));
      } catch (e) { $("similar").append(el("li", { class: "meta" }, e.message)); }
    }

    function mark(t) {
      for (const li of document.querySelectorAll("#shots li, #transcript li")) {
        const a = parseFloat(li.dataset.start), b = parseFloat(li.dataset.end);
        li.classList.toggle("current", t >= a && t < b);
      }
    }

    keyBox(() => location.reload());
    load();
  }

  window.mediaintel = { searchPage, mediaPage, highlighted };
})();
