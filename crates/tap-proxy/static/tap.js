// TAP member pages: inbox refresh and the passkey ceremonies. No build step,
// no dependencies; the Content-Security-Policy allows only this file.
"use strict";
(function () {
  function csrf() {
    var m = document.querySelector('meta[name="tap-csrf"]');
    return m ? m.getAttribute("content") : "";
  }
  function say(text) {
    var s = document.getElementById("passkey-status");
    if (s) { s.textContent = text; }
  }
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  async function post(url, body) {
    var r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-TAP-CSRF": csrf() },
      body: JSON.stringify(body || {})
    });
    var v = null;
    try { v = await r.json(); } catch (e) { v = null; }
    if (!r.ok) {
      throw new Error((v && (v.error || v.detail)) || ("HTTP " + r.status));
    }
    return v;
  }
  function credentialJson(c) {
    var r = c.response, out = { id: c.id, rawId: bufToB64url(c.rawId), type: c.type, extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {}, response: { clientDataJSON: bufToB64url(r.clientDataJSON) } };
    if (r.attestationObject) { out.response.attestationObject = bufToB64url(r.attestationObject); }
    if (r.authenticatorData) { out.response.authenticatorData = bufToB64url(r.authenticatorData); }
    if (r.signature) { out.response.signature = bufToB64url(r.signature); }
    if (r.userHandle) { out.response.userHandle = bufToB64url(r.userHandle); }
    return out;
  }
  async function register(form) {
    var name = form.querySelector('input[name="name"]').value;
    say("Follow your browser's prompt…");
    var opts = await post("/passkeys/register/begin", { name: name });
    var pk = opts.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    var cred = await navigator.credentials.create({ publicKey: pk });
    await post("/passkeys/register/finish", credentialJson(cred));
    say("Passkey added.");
    location.reload();
  }
  async function approve(txn) {
    say("Follow your browser's prompt…");
    var opts = await post("/approve/" + encodeURIComponent(txn) + "/passkey/begin", {});
    var pk = opts.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    var cred = await navigator.credentials.get({ publicKey: pk });
    var d = await post("/approve/" + encodeURIComponent(txn) + "/passkey/finish", credentialJson(cred));
    say("Approved (" + d.approvals + "/" + d.min_approvals + ").");
    location.reload();
  }
  async function signIn(button) {
    var email = document.querySelector('input[name="email"]').value;
    if (!email) { say("Type your e-mail first."); return; }
    say("Follow your browser's prompt…");
    var opts = await post("/login/passkey/begin", { email: email });
    var pk = opts.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    var cred = await navigator.credentials.get({ publicKey: pk });
    await post("/login/passkey/finish?ceremony=" + encodeURIComponent(opts.ceremony), credentialJson(cred));
    location.href = button.getAttribute("data-next") || "/inbox";
  }
  async function remove(id) {
    var r = await fetch("/passkeys/" + encodeURIComponent(id), { method: "DELETE", credentials: "same-origin", headers: { "X-TAP-CSRF": csrf() } });
    if (!r.ok) { throw new Error("HTTP " + r.status); }
    location.reload();
  }
  function fail(e) { say("Not done: " + (e && e.message ? e.message : e)); }
  function refreshInbox(box) {
    var url = box.getAttribute("data-refresh");
    setInterval(async function () {
      if (document.hidden) { return; }
      try {
        var r = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (r.ok) { box.innerHTML = await r.text(); }
      } catch (e) { /* offline: try again next time */ }
    }, 4000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("inbox");
    if (box) { refreshInbox(box); }
    var form = document.getElementById("passkey-register");
    if (form) {
      form.addEventListener("submit", function (ev) { ev.preventDefault(); register(form).catch(fail); });
    }
    var signin = document.getElementById("passkey-signin");
    if (signin) {
      signin.addEventListener("click", function () { signIn(signin).catch(fail); });
    }
    document.querySelectorAll("[data-passkey-approve]").forEach(function (b) {
      b.addEventListener("click", function () { approve(b.getAttribute("data-passkey-approve")).catch(fail); });
    });
    document.querySelectorAll("[data-passkey-delete]").forEach(function (b) {
      b.addEventListener("click", function () { remove(b.getAttribute("data-passkey-delete")).catch(fail); });
    });
  });
})();
