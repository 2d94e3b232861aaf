// The capacity form checks the vaccine's dose interval and the slots as one types, and says
// how many pairs will be published; the server checks the same again.
"use strict";
(function () {
  const form = document.getElementById("capacity");
  const check = document.getElementById("check");
  if (!form || !check) return;
  const field = (name) => form.elements[name];
  const minutes = (time) => {
    const [hours, mins] = time.split(":").map(Number);
    return hours * 60 + mins;
  };
  const fill = (text, values) =>
    Object.entries(values).reduce((said, [name, value]) => said.replace(`{${name}}`, value), text);

  function judge() {
    const vaccine = field("vaccine").selectedOptions[0];
    const days = field("second_dose_after_days");
    const from = field("from").value;
    const until = field("until").value;
    const slot = Number(field("slot_minutes").value);
    const people = Number(field("people_per_slot").value);
    days.removeAttribute("aria-invalid");
    if (!vaccine || !vaccine.value) return "";
    const doses = Number(vaccine.dataset.doses);
    const second = days.value.trim();
    if (doses === 1 && second !== "") {
      days.setAttribute("aria-invalid", "true");
      return check.dataset.oneDose;
    }
    if (doses > 1) {
      const min = Number(vaccine.dataset.min);
      const max = Number(vaccine.dataset.max);
      const given = Number(second);
      if (second === "" || !Number.isInteger(given) || given < min || given > max) {
        days.setAttribute("aria-invalid", "true");
        return fill(check.dataset.interval, { min, max });
      }
    }
    if (!from || !until || minutes(from) >= minutes(until)) return check.dataset.times;
    if (!(slot > 0) || !(people > 0)) return "";
    const slots = Math.ceil((minutes(until) - minutes(from)) / slot);
    return fill(check.dataset.ok, { pairs: slots * people });
  }

  const show = () => {
    check.textContent = judge();
  };
  form.addEventListener("input", show);
  form.addEventListener("change", show);
  show();
})();
