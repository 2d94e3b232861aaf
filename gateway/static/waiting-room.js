// The waiting page's script: joins the room (solving the proof of work when the room asks for
// one), shows position and estimated wait, polls when the server says, and moves on once
// admitted. The room, the difficulty and the texts come from the page's data- attributes.
(() => {
  const page = document.getElementById("waiting-room").dataset;
  const room = page.room, difficulty = Number(page.difficulty);
  const text = { prequeue: page.textPrequeue, queued: page.textQueued, admitted: page.textAdmitted, error: page.textError };
  const $ = id => document.getElementById(id);
  const minutes = s => s < 60 ? page.textUnderAMinute : Math.ceil(s / 60) + page.textMinutes;
  const zeroBits = bytes => { let n = 0; for (const b of bytes) { if (b === 0) { n += 8; continue; } return n + Math.clz32(b) - 24; } return n; };
  async function solve(challenge) {
    const encoder = new TextEncoder();
    for (let nonce = 0; ; nonce++) {
      const hash = await crypto.subtle.digest("SHA-256", encoder.encode(challenge + "." + nonce));
      if (zeroBits(new Uint8Array(hash)) >= difficulty) return String(nonce);
    }
  }
  async function call(method, path, body) {
    const response = await fetch(path, { method, credentials: "same-origin",
      headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
    const data = await response.json();
    if (!response.ok) throw Object.assign(new Error(data.error.message), { status: response.status, retry: response.headers.get("Retry-After") });
    return data;
  }
  function show(data) {
    $("state").textContent = text[data.state];
    $("position").textContent = data.position == null ? "–" : data.position;
    $("eta").textContent = data.state === "admitted" ? "–" : minutes(data.eta_seconds);
    if (data.state === "admitted") { location.href = data.target_path; return; }
    setTimeout(poll, data.poll_after_seconds * 1000);
  }
  async function poll() {
    try { show(await call("GET", `/v1/rooms/${room}/status`)); }
    catch (e) { e.status === 401 ? join() : retry(e); }
  }
  async function join() {
    try {
      let body;
      if (difficulty > 0) {
        const c = await call("POST", `/v1/rooms/${room}/challenge`);
        body = { challenge: c.challenge, nonce: await solve(c.challenge) };
      }
      show(await call("POST", `/v1/rooms/${room}/join`, body));
    } catch (e) { retry(e); }
  }
  function retry(e) {
    $("state").textContent = text.error + " " + e.message;
    setTimeout(join, (Number(e.retry) || 10) * 1000);
  }
  join();
})();
