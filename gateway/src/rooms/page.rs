//! The waiting page `GET /rooms/{room}`: plain, accessible HTML in German and English. Its
//! small script joins, solves the proof of work when the room asks for one, shows position
//! and estimated wait, polls when the server says, and moves on once admitted.

use actix_web::{web, HttpResponse};
use drawbridge_domain::RoomMode;

use crate::error::ApiError;
use crate::pages::{escape, page, t, LanguageQuery};
use crate::AppState;

pub async fn waiting_room(
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: web::Query<LanguageQuery>,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let view = state.rooms.room(&room)?;
    let fair = match view.config.mode {
        RoomMode::Random => t(
            language,
            "Die Reihenfolge ist fair: Sie wird ausgelost – bei jeder Ziehung hat jede und jeder, der gerade wartet, dieselbe Chance, egal wann sie oder er gekommen ist.",
            "The queue is fair: places are drawn by lot, and in every draw everyone waiting has the same chance, whenever they arrived.",
        ),
        _ => t(
        language,
        "Die Reihenfolge ist fair: Wer vor der Öffnung kommt, erhält bei der Öffnung einen ausgelosten Platz, danach gilt die Reihenfolge des Eintreffens – früher kommen oder viele Fenster öffnen bringt keinen Vorteil.",
        "The queue is fair: everyone who arrives before opening gets a place drawn by lot at opening, and after that it is first come, first served – arriving early or opening many windows gains nothing.",
    ),
    };
    let body = format!(
        r#"<p>{fair}</p>
<div role="status" aria-live="polite" aria-atomic="true">
<p id="state">{joining}</p>
<p><strong>{position_label}</strong> <span id="position">–</span></p>
<p><strong>{eta_label}</strong> <span id="eta">–</span></p>
</div>
<p>{keep_open}</p>
<noscript><p class="no">{noscript}</p></noscript>
<script>
(() => {{
  const room = {room_js}, difficulty = {difficulty};
  const text = {{ prequeue: {prequeue_js}, queued: {queued_js}, admitted: {admitted_js}, error: {error_js} }};
  const $ = id => document.getElementById(id);
  const minutes = s => s < 60 ? {under_minute_js} : Math.ceil(s / 60) + {minutes_js};
  const zeroBits = bytes => {{ let n = 0; for (const b of bytes) {{ if (b === 0) {{ n += 8; continue; }} return n + Math.clz32(b) - 24; }} return n; }};
  async function solve(challenge) {{
    const encoder = new TextEncoder();
    for (let nonce = 0; ; nonce++) {{
      const hash = await crypto.subtle.digest("SHA-256", encoder.encode(challenge + "." + nonce));
      if (zeroBits(new Uint8Array(hash)) >= difficulty) return String(nonce);
    }}
  }}
  async function call(method, path, body) {{
    const response = await fetch(path, {{ method, credentials: "same-origin",
      headers: body ? {{ "content-type": "application/json" }} : {{}}, body: body ? JSON.stringify(body) : undefined }});
    const data = await response.json();
    if (!response.ok) throw Object.assign(new Error(data.error.message), {{ status: response.status, retry: response.headers.get("Retry-After") }});
    return data;
  }}
  function show(data) {{
    $("state").textContent = text[data.state];
    $("position").textContent = data.position == null ? "–" : data.position;
    $("eta").textContent = data.state === "admitted" ? "–" : minutes(data.eta_seconds);
    if (data.state === "admitted") {{ location.href = data.target_path; return; }}
    setTimeout(poll, data.poll_after_seconds * 1000);
  }}
  async function poll() {{
    try {{ show(await call("GET", `/v1/rooms/${{room}}/status`)); }}
    catch (e) {{ e.status === 401 ? join() : retry(e); }}
  }}
  async function join() {{
    try {{
      let body;
      if (difficulty > 0) {{
        const c = await call("POST", `/v1/rooms/${{room}}/challenge`);
        body = {{ challenge: c.challenge, nonce: await solve(c.challenge) }};
      }}
      show(await call("POST", `/v1/rooms/${{room}}/join`, body));
    }} catch (e) {{ retry(e); }}
  }}
  function retry(e) {{
    $("state").textContent = text.error + " " + e.message;
    setTimeout(join, (Number(e.retry) || 10) * 1000);
  }}
  join();
}})();
</script>"#,
        joining = t(language, "Sie werden eingereiht …", "Joining the queue …"),
        position_label = t(language, "Ihr Platz:", "Your place:"),
        eta_label = t(language, "Geschätzte Wartezeit:", "Estimated wait:"),
        keep_open = t(
            language,
            "Bitte lassen Sie diese Seite geöffnet; sie fragt selbst nach und leitet Sie weiter, sobald Sie an der Reihe sind. Wer die Seite lange schließt, verliert seinen Platz.",
            "Please keep this page open; it checks by itself and takes you on as soon as it is your turn. Closing it for long gives up your place.",
        ),
        noscript = t(
            language,
            "Diese Seite braucht JavaScript, um Ihren Platz zu halten.",
            "This page needs JavaScript to hold your place.",
        ),
        room_js = js(&view.name),
        difficulty = view.config.pow_difficulty,
        prequeue_js = js(t(language, "Sie sind in der Vorwarteschlange. Ihr Platz wird bei der nächsten Ziehung ausgelost (die erste ist bei der Öffnung).", "You are in the pre-queue. Your place is drawn by lot at the next draw (the first one is at opening).")),
        queued_js = js(t(language, "Sie sind in der Warteschlange.", "You are in the queue.")),
        admitted_js = js(t(language, "Sie sind an der Reihe. Sie werden weitergeleitet …", "It is your turn. Taking you on …")),
        error_js = js(t(language, "Gerade klappt es nicht; wir versuchen es gleich wieder.", "This did not work just now; trying again shortly.")),
        under_minute_js = js(t(language, "unter einer Minute", "under a minute")),
        minutes_js = js(t(language, " Minuten", " minutes")),
    );
    let title = format!(
        "{} {}",
        t(language, "Warteraum", "Waiting room"),
        escape(&view.name)
    );
    Ok(page(language, &title, &body))
}

/// A JavaScript string literal (JSON is valid JavaScript; `<` is escaped so that no text can
/// close the script element).
fn js(text: &str) -> String {
    serde_json::to_string(text)
        .expect("strings serialise")
        .replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    #[test]
    fn script_strings_cannot_end_the_script() {
        assert_eq!(super::js("a\"</script>"), r#""a\"\u003c/script>""#);
    }
}
