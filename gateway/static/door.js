// The door screen: scans a pass with the camera (BarcodeDetector where the browser has one,
// else jsQR on the video's frames) into the pass field and sends it. Without a connection it
// checks the pass on the device with the published public keys (Ed25519, kept from the last
// visit), admits the person, and keeps the check-in until the connection is back; then it
// sends what it kept and flags any pass that another door had used meanwhile. A pass used
// twice on this device while offline is refused at once.
"use strict";
(function () {
  const form = document.getElementById("door");
  if (!form) return;
  const said = form.dataset;
  const field = form.elements.pass;
  const queueName = "drawbridge-door-queue:" + said.centre;
  const keysName = "drawbridge-pass-keys";

  // The keys are fetched with every visit and kept, so the next offline shift has them.
  const keys = (async () => {
    try {
      const response = await fetch(said.keys, { cache: "no-cache" });
      if (response.ok) {
        const set = await response.json();
        localStorage.setItem(keysName, JSON.stringify(set));
        return set;
      }
    } catch (_) {
      // Offline: the kept keys below.
    }
    return JSON.parse(localStorage.getItem(keysName) || '{"keys":[]}');
  })();

  const bytes = (base64url) => {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };
  const json = (base64url) => JSON.parse(new TextDecoder().decode(bytes(base64url)));

  // The pass's claims if a published key signed it, it has not expired and is for this
  // centre; else null.
  async function verify(token) {
    try {
      const [header, payload, signature] = token.trim().split(".");
      const head = json(header);
      const jwk = (await keys).keys.find((key) => key.kid === head.kid);
      if (!jwk || head.alg !== "EdDSA") return null;
      const key = await crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["verify"]);
      const signed = new TextEncoder().encode(header + "." + payload);
      if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, bytes(signature), signed))) return null;
      const claims = json(payload);
      if (claims.exp * 1000 < Date.now() || claims.c !== said.centre) return null;
      return claims;
    } catch (_) {
      return null;
    }
  }

  const reference = (booking) => {
    const hex = booking.replace(/-/g, "").toUpperCase();
    return `B-${hex.slice(0, 4)}-${hex.slice(4, 8)}`;
  };

  // The answer in large green or red, where the server puts its own.
  function answer(admitted, headline, detail) {
    let box = document.getElementById("answer");
    if (!box) {
      box = document.createElement("div");
      box.id = "answer";
      box.setAttribute("role", "alert");
      form.parentNode.insertBefore(box, form);
    }
    box.className = "door-answer " + (admitted ? "admitted" : "refused");
    box.replaceChildren();
    const head = document.createElement("p");
    head.className = "headline";
    head.textContent = (admitted ? "✓ " : "✗ ") + headline;
    const text = document.createElement("p");
    text.textContent = detail;
    box.append(head, text);
  }

  const queued = () => JSON.parse(localStorage.getItem(queueName) || "[]");

  async function offline(event) {
    event.preventDefault();
    const token = field.value.trim();
    field.value = "";
    field.focus();
    const claims = token && (await verify(token));
    if (!claims) {
      answer(false, said.refused, token ? said.invalid : said.onlyOnline);
      return;
    }
    const queue = queued();
    if (queue.some((entry) => entry.booking === claims.b)) {
      answer(false, said.refused, said.twice + " " + reference(claims.b));
      return;
    }
    queue.push({ booking: claims.b, pass: token, at: new Date().toISOString() });
    localStorage.setItem(queueName, JSON.stringify(queue));
    answer(true, said.admit, said.offline + " " + reference(claims.b));
  }

  // Sends the check-ins kept offline, in order; a pass the server refuses (another door used
  // it meanwhile) is flagged by its booking reference.
  async function sync() {
    const queue = queued();
    if (!navigator.onLine || queue.length === 0) return;
    const flagged = [];
    for (const entry of queue) {
      const body = new URLSearchParams({ csrf: form.elements.csrf.value, pass: entry.pass });
      let response;
      try {
        response = await fetch(form.action, { method: "POST", body, credentials: "same-origin" });
      } catch (_) {
        return; // Offline again: what is left is sent next time.
      }
      if (!response.ok) flagged.push(reference(entry.booking));
      localStorage.setItem(queueName, JSON.stringify(queued().filter((e) => e.booking !== entry.booking)));
    }
    if (flagged.length) answer(false, said.refused, said.twice + " " + flagged.join(", "));
    else answer(true, said.synced, "");
  }

  form.addEventListener("submit", (event) => {
    if (!navigator.onLine) offline(event);
  });
  window.addEventListener("online", sync);
  sync();

  // The camera, where the device has one.
  const camera = document.getElementById("camera");
  const video = document.getElementById("viewfinder");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
  camera.hidden = false;
  camera.addEventListener("click", async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const detector = "BarcodeDetector" in window ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const scan = async () => {
      let text = null;
      if (detector) {
        const codes = await detector.detect(video);
        text = codes.length ? codes[0].rawValue : null;
      } else if (video.videoWidth) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        context.drawImage(video, 0, 0);
        const image = context.getImageData(0, 0, canvas.width, canvas.height);
        const code = window.jsQR(image.data, image.width, image.height);
        text = code ? code.data : null;
      }
      if (!text) {
        requestAnimationFrame(scan);
        return;
      }
      stream.getTracks().forEach((track) => track.stop());
      video.hidden = true;
      field.value = text;
      form.requestSubmit();
    };
    scan();
  });
})();
