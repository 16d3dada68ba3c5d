// The demo page: signed out, it lists the demo members to sign in as; signed in, it shows
// who you are (from the gateway's identity headers), your sessions (Stytch's Get Sessions),
// log out buttons, an admin's "force out" buttons, the organization's documents (reading and
// deleting them as the gateway's RBAC rules allow), a link to the billing page (behind MFA),
// and a live WebSocket through the gateway that the gateway closes when the session is
// revoked (close code 1008, reason "session revoked"). An admin's page links to a "member
// view": the same demo under the other loopback host name (127.0.0.1 <-> localhost), whose
// cookies the browser keeps apart, so one browser can watch a forced sign-out.
// document.body.dataset.state is "signed-out", "signed-in" or "revoked" (the browser test
// waits on it).
"use strict";

const $ = (selector) => document.querySelector(selector);

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function time(rfc3339) {
  return rfc3339 ? new Date(rfc3339).toLocaleString() : "";
}

function setState(state) {
  document.body.dataset.state = state;
}

// This demo under the other loopback host name (its own cookie jar), or null elsewhere.
function otherHost() {
  const other = { "127.0.0.1": "localhost", localhost: "127.0.0.1" }[location.hostname];
  return other ? `${location.protocol}//${other}${location.port ? `:${location.port}` : ""}` : null;
}

// The member view's tab says so (remembered for the tab, across its sign-in's redirect).
function showViewName() {
  if (new URLSearchParams(location.search).get("view") === "member") {
    sessionStorage.setItem("view", "member");
  }
  const badge = $("#view-name");
  if (sessionStorage.getItem("view") === "member") {
    badge.textContent = `member view · ${location.host}`;
    badge.hidden = false;
  }
}

async function main() {
  showViewName();
  const me = await fetch("/api/me", { headers: { accept: "application/json" } });
  if (me.status === 200) {
    await signedIn(await me.json());
  } else {
    await signedOut();
  }
}

async function signedOut() {
  $("#signed-out").hidden = false;
  const tip = $("#member-view-tip");
  if (sessionStorage.getItem("view") === "member") {
    tip.textContent = "This is the member view, with its own cookies: sign in as the member the admin " +
      "will force out (Bob or Carol for Alice), then press Force sign-out on the admin's page.";
  }
  tip.hidden = !otherHost();
  const members = await (await fetch("/demo/members")).json();
  const list = $("#members");
  for (const member of members) {
    const item = el("li");
    item.append(el("strong", member.name), el("div", member.email));
    item.append(el("div", `${member.role} · ${member.organization_name}`, { class: "org" }));
    const form = el("form", undefined, { method: "post", action: "/demo/sign-in" });
    form.append(el("input", undefined, { type: "hidden", name: "member_id", value: member.member_id }));
    form.append(el("button", `Sign in as ${member.name}`, { type: "submit", "data-member": member.name }));
    item.append(form);
    list.append(item);
  }
  setState("signed-out");
}

async function signedIn(me) {
  $("#signed-in").hidden = false;
  const who = $("#who");
  const rows = [
    ["name", me.name],
    ["email", me.email],
    ["organization", me.organization_name],
    ["roles", me.roles.join(", ")],
    ["member id", me.member_id],
    ["session id", me.member_session_id],
  ];
  for (const [label, value] of rows) {
    who.append(el("dt", label), el("dd", value, { "data-field": label.replace(" ", "_") }));
  }
  $("#logout").addEventListener("click", () => logout("/logout"));
  $("#logout-everywhere").addEventListener("click", () => logout("/logout/everywhere"));
  await loadSessions();
  await loadDocuments(me);
  if (me.admin) await loadOrgMembers(me);
  await loadMachine();
  openLive();
  setState("signed-in");
}

async function logout(path) {
  const answer = await fetch(path, { method: "POST" });
  $("#action-status").textContent = `${path} → ${answer.status}`;
  location.reload();
}

async function loadSessions() {
  const answer = await fetch("/api/sessions");
  const body = $("#sessions tbody");
  body.replaceChildren();
  if (answer.status !== 200) {
    body.append(el("tr")).append(el("td", `Get Sessions failed (${answer.status})`));
    return;
  }
  const sessions = await answer.json();
  for (const session of sessions) {
    const row = el("tr", undefined, session.current ? { class: "current" } : {});
    const id = session.member_session_id + (session.current ? " (this one)" : "");
    row.append(el("td", id), el("td", time(session.started_at)), el("td", time(session.expires_at)));
    body.append(row);
  }
  $("#sessions-note").hidden = sessions.length < 2;
}

// A refusal of the gateway, in words: its status, its JSON `error`, `message` and Stytch's
// `error_type`.
async function refusal(answer) {
  let body = {};
  try { body = await answer.json(); } catch (_) { /* not JSON */ }
  const parts = [`${answer.status} ${body.error || answer.statusText}`];
  if (body.message) parts.push(body.message);
  if (body.error_type) parts.push(`Stytch error_type ${body.error_type}`);
  return `Refused by the gateway: ${parts.join(" · ")}`;
}

function documentsStatus(text, outcome) {
  const status = $("#documents-status");
  status.textContent = text;
  status.dataset.outcome = outcome;
}

async function loadDocuments(me) {
  const base = `/api/orgs/${encodeURIComponent(me.organization_id)}/documents`;
  const list = $("#document-list");
  list.replaceChildren();
  const answer = await fetch(base, { headers: { accept: "application/json" } });
  if (answer.status !== 200) {
    documentsStatus(await refusal(answer), "refused");
    return;
  }
  for (const doc of await answer.json()) {
    const item = el("li", undefined, { "data-document": doc.id });
    item.append(el("span", doc.title));
    const button = el("button", "Delete", { type: "button", class: "danger", "data-delete": doc.id });
    button.addEventListener("click", async () => {
      const deleted = await fetch(`${base}/${encodeURIComponent(doc.id)}`, {
        method: "DELETE",
        headers: { accept: "application/json" },
      });
      if (deleted.status === 200) {
        item.remove();
        documentsStatus(`Deleted "${doc.title}" (200).`, "deleted");
      } else {
        documentsStatus(await refusal(deleted), "refused");
      }
    });
    item.append(button);
    list.append(item);
  }
  list.dataset.loaded = "true";
}

// The machine card: the demo's M2M client; "call" gets it a fresh token from Stytch (through
// the demo app) and calls /api/reports with it, without cookies, as a backend would; "cut"
// is the gateway's admin route, with this member's session.
async function loadMachine() {
  const machine = await (await fetch("/demo/machine")).json();
  $("#machine-name").textContent = machine.name;
  $("#machine-client").textContent = machine.client_id;
  $("#machine-scopes").textContent = machine.scopes.join(" ");
  const status = (text, outcome) => {
    $("#machine-status").textContent = text;
    $("#machine-status").dataset.outcome = outcome;
  };
  $("#machine-call").addEventListener("click", async () => {
    $("#machine-answer").textContent = "";
    const minted = await fetch("/demo/machine/token", { method: "POST" });
    const token = await minted.json();
    if (minted.status !== 200) {
      // Stytch's own refusal: a suspended client gets no new token.
      status(`Stytch's token endpoint → ${minted.status} ${token.error || ""}: ${token.error_description || ""}`, "refused");
      return;
    }
    window.demoMachineToken = token.access_token;
    await callReports(token.access_token, status);
  });
  $("#machine-cut").addEventListener("click", async () => {
    const path = `/admin/m2m-clients/${encodeURIComponent(machine.client_id)}/revoke`;
    const answer = await fetch(path, { method: "POST", headers: { accept: "application/json" } });
    const body = await answer.text();
    status(`POST ${path} → ${answer.status}`, answer.status === 200 ? "deleted" : "refused");
    $("#machine-answer").textContent = body;
    // The token minted before the cut-off, called again: refused now.
    if (answer.status === 200 && window.demoMachineToken) {
      await callReports(window.demoMachineToken, (text) =>
        status(`cut off (200); the token from before → ${text}`, "refused"));
    }
  });
}

async function callReports(token, status) {
  $("#machine-curl").textContent =
    `curl -H 'Authorization: Bearer ${token}' ${location.origin}/api/reports`;
  const answer = await fetch("/api/reports", {
    headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    credentials: "omit",
  });
  const body = await answer.text();
  $("#machine-answer").textContent = `HTTP ${answer.status}\n${body}`;
  status(`GET /api/reports as the machine → ${answer.status}`, answer.status === 200 ? "deleted" : "refused");
  document.body.dataset.machine = String(answer.status);
}

async function loadOrgMembers(me) {
  $("#admin").hidden = false;
  const members = await (await fetch("/demo/members")).json();
  const list = $("#org-members");
  const others = members.filter((m) => m.organization_id === me.organization_id && m.member_id !== me.member_id);
  if (others.length === 0) {
    const alone = `${me.name} is ${me.organization_name}'s only member: nobody to force out here. ` +
      "Sign in as Alice, Acme's admin, to force Bob or Carol out.";
    list.append(el("li", alone, { class: "empty", "data-empty": "true" }));
    return;
  }
  const other = otherHost();
  if (other) {
    $("#member-view").href = `${other}/?view=member`;
    $("#member-view-host").textContent = other.replace(/^https?:\/\//, "");
    $("#member-view-steps").hidden = false;
  }
  for (const member of others) {
    const item = el("li");
    item.append(el("span", `${member.name} (${member.email})`));
    const button = el("button", "Force sign-out", { type: "button", class: "danger", "data-member": member.name });
    button.addEventListener("click", async () => {
      const path = `/admin/members/${encodeURIComponent(member.member_id)}/revoke-sessions`;
      const answer = await fetch(path, { method: "POST" });
      $("#action-status").textContent = `${member.name} forced out → ${answer.status}`;
    });
    item.append(button);
    list.append(item);
  }
}

function liveEvent(text) {
  const item = el("li", `${new Date().toLocaleTimeString()}  ${text}`);
  $("#live-events").prepend(item);
}

function openLive() {
  const status = $("#live-status");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/live`);
  socket.onopen = () => {
    status.textContent = "open: this session is live";
    status.dataset.live = "open";
  };
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    liveEvent(data.type === "hello" ? `connected as ${data.member_id}` : data.type);
  };
  socket.onclose = async (event) => {
    status.dataset.code = event.code;
    if (event.reason === "session revoked") {
      // The gateway closed it: this session was revoked (logout, an admin, Stytch).
      liveEvent(`signed out: session revoked (close code ${event.code})`);
      status.textContent = "signed out: session revoked";
      status.dataset.live = "revoked";
      setState("revoked");
      setTimeout(() => location.reload(), 1500);
      return;
    }
    const why = event.reason ? `: ${event.reason}` : "";
    liveEvent(`connection closed (code ${event.code}${why})`);
    const me = await fetch("/api/me");
    if (me.status === 401) {
      status.textContent = `revoked at ${new Date().toLocaleTimeString()}: signing out…`;
      status.dataset.live = "revoked";
      setState("revoked");
      setTimeout(() => location.reload(), 1500);
    } else {
      status.textContent = "reconnecting…";
      status.dataset.live = "connecting";
      setTimeout(openLive, 2000);
    }
  };
}

main();
