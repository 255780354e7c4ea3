"""The review queue for operators: pages and API, behind app/web/auth.py.

API: `Authorization: Bearer <client token>`.
  GET  /api/review?status=OPEN&reason=&stage=&min_age=   the queue (oldest first)
  GET  /api/review/{id}                                   an item and its interaction's story
  POST /api/review/{id}/resubmit {customerId?, note?}     operator role
  POST /api/review/{id}/dismiss  {note}                   operator role
Pages (server-rendered, no front-end build): /review/login, /review, /review/{id},
/review/logout. A request without valid credentials gets 401 and learns nothing else; a
viewer's action gets 403. Actions are published to callbill.review-actions and applied by
the worker that owns the interaction (agents/review.py); each is audited with the
verified operator and the time.
"""
from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web as aioweb
from faust.web import Request, Response, View
from pydantic import ValidationError

from adapters.operators import Principal
from agents.context import Context
from app.web.auth import COOKIE, SECURITY, Gate
from schemas.events import ReviewAction, ReviewRecord, utcnow
from schemas.invoices import kafka_key


def unauthorized(view: View) -> Response:
    return view.json({"error": "unauthorized"}, status=401,
                     headers={**SECURITY, "WWW-Authenticate": 'Bearer realm="callbill"'})


def forbidden(view: View, who: Principal) -> Response:
    return view.json({"error": f"forbidden: the {who.role} role reads the queue; acting needs the operator role"},
                     status=403, headers=SECURITY)


def public(r: ReviewRecord, now: datetime) -> dict[str, Any]:
    """What a list shows: no interaction payload (names, ids), just what to act on."""
    return {"interactionId": r.interactionId, "stage": r.stage, "reason": r.reason, "detail": r.detail,
            "status": r.status, "openedAt": r.openedAt.isoformat(), "ageSeconds": int((now - r.openedAt).total_seconds()),
            "count": r.count, "actor": r.actor, "updatedAt": r.updatedAt.isoformat()}


def interaction_summary(r: ReviewRecord) -> dict[str, Any] | None:
    """The facts a reviewer needs to fix an item (no agent name, no contact details)."""
    i = r.interaction or {}
    keys = ("customerId", "externalContactId", "endedAt", "durationSeconds", "serviceType", "wrapupCode", "source")
    return {k: i[k] for k in keys if i.get(k) is not None} or None


async def publish_action(ctx: Context, action: ReviewAction) -> None:
    await ctx.send_raw("callbill.review-actions", kafka_key(action.interactionId).encode(),
                       action.model_dump_json().encode())


def _filters(request: Request) -> dict[str, Any]:
    q = request.query
    min_age = q.get("min_age") or None
    try:
        age = float(min_age) if min_age else None
    except ValueError:
        age = None
    return {"status": q.get("status", "OPEN") or None, "reason": q.get("reason") or None,
            "stage": q.get("stage") or None, "min_age": age}


def precheck(ctx: Context, r: ReviewRecord | None, action: str, customer_id: str | None) -> str | None:
    """Refuse at once what the agent would refuse (the agent checks again)."""
    if r is None:
        return "no such review item"
    if r.status != "OPEN":
        return f"the item is {r.status.lower()}, not open"
    if action == "resubmit" and r.stage == "assemble":
        return "assembly items cannot be resubmitted; re-read the conversation with `callbill backfill`"
    if action == "resubmit" and r.stage == "intake":
        if customer_id:
            if customer_id not in ctx.directory.customers:
                return "that customer id is not in the customer directory: import it first"
        else:
            i = r.interaction or {}
            contact = i.get("externalContactId")
            if not i.get("customerId") and not (contact and ctx.directory.customer_for_contacts([contact])):
                return ("no customer for this interaction yet: import the customer (with the Genesys external "
                        "contact id) or give a customer id")
    return None


# --- JSON API ----------------------------------------------------------------------------------

def _history(story: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    for a in story.get("audit", []):
        events.append({"time": a["time"], "stage": a["stage"], "what": a["outcome"], "reason": a.get("reason"),
                       "actor": a.get("actor")})
    for d in story.get("deliveries", []):
        events.append({"time": d["time"], "stage": "delivery", "what": f"{d.get('kind', 'invoice')} by {d['channel']}",
                       "reason": d.get("providerId"), "actor": None})
    events.sort(key=lambda e: e["time"])
    return events


# --- pages -------------------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,Arial,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}th{background:#f4f4f4}
.muted{color:#777}form.inline{display:inline}input,select,textarea{font:inherit}.flash{background:#eef;padding:6px}"""


def page(title: str, body: str, who: Principal | None = None) -> str:
    user = ""
    if who is not None:
        out = ("<form class='inline' method='post' action='/review/logout'><button id='signout'>Sign out</button></form>"
               if who.kind == "operator" else "")
        user = (f'<p class="muted" id="who">signed in as {html.escape(who.actor)} ({html.escape(who.role)}) '
                f'{out}</p>')
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)} — callbill</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{user}{body}</body></html>")


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _html(view: View, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return view.html(text, status=status, headers={**SECURITY, **(headers or {})})


def _redirect(ctx: Context, location: str, cookie: str | None = None) -> aioweb.Response:
    """`cookie`: a session id to set, or "" to end the browser's session."""
    resp = aioweb.Response(status=303, headers={**SECURITY, "Location": location})
    if cookie:
        resp.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                        secure=ctx.settings.public_url.startswith("https://"),
                        max_age=int(ctx.settings.session_hours * 3600))
    elif cookie == "":
        resp.del_cookie(COOKIE, path="/")
    return resp


LOGIN_FORM = """<form method="post" action="/review/login">
<p><label>Name <input name="name" id="name" required maxlength="100" autocomplete="username"></label></p>
<p><label>Password <input name="password" id="password" type="password" required autocomplete="current-password">
</label></p><p><button type="submit" id="signin">Sign in</button></p></form>"""


def register(app: Any, ctx: Context, gate: Gate) -> None:
    @app.page("/api/review")
    class ReviewListApi(View):
        async def get(self, request: Request) -> Response:
            if await gate.principal(request) is None:
                return unauthorized(self)
            now = utcnow()
            items = ctx.review_queue.select(now=now, **_filters(request))
            return self.json({"items": [public(r, now) for r in items], "count": len(items)}, headers=SECURITY)

    @app.page("/api/review/{iid}")
    class ReviewItemApi(View):
        async def get(self, request: Request, iid: str) -> Response:
            if await gate.principal(request) is None:
                return unauthorized(self)
            r = ctx.review_queue.entries.get(iid)
            if r is None:
                return self.json({"error": "not_found"}, status=404, headers=SECURITY)
            from app.ops.trace import trace

            story = await trace(iid)
            led = story.get("ledger") or {}
            return self.json({"item": {**public(r, utcnow()), "interaction": interaction_summary(r), "note": r.note},
                              "ledger": {"state": led.get("state"), "reason": led.get("reason"),
                                         "states": [s.get("state") for s in story.get("ledgerHistory", [])]},
                              "history": _history(story)}, headers=SECURITY)

    @app.page("/api/review/{iid}/{action}")
    class ReviewActionApi(View):
        async def post(self, request: Request, iid: str, action: str) -> Response:
            who = await gate.principal(request)
            if who is None:
                return unauthorized(self)
            if not who.can_act:
                return forbidden(self, who)
            if action not in ("resubmit", "dismiss"):
                return self.json({"error": "unknown action"}, status=404, headers=SECURITY)
            try:
                body = json.loads(await request.read() or b"{}")
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                return self.json({"error": "body must be a JSON object"}, status=400, headers=SECURITY)
            try:
                # the verified principal, whatever the body says
                a = ReviewAction(interactionId=iid, action=action, actor=who.actor,  # type: ignore[arg-type]
                                 note=body.get("note"), customerId=body.get("customerId"))
            except ValidationError as e:
                from schemas.errors import field_errors

                return self.json({"error": "invalid action", "fields": field_errors(e)}, status=422, headers=SECURITY)
            if action == "dismiss" and not a.note:
                return self.json({"error": "a dismissal needs a note"}, status=422, headers=SECURITY)
            problem = precheck(ctx, ctx.review_queue.entries.get(iid), action, a.customerId)
            if problem:
                status = 404 if problem == "no such review item" else 409
                return self.json({"error": problem}, status=status, headers=SECURITY)
            await publish_action(ctx, a)
            return self.json({"accepted": action, "interactionId": iid, "actor": a.actor}, status=202, headers=SECURITY)

    @app.page("/review/login")
    class LoginPage(View):
        async def get(self, request: Request) -> Response:
            return _html(self, page("Sign in", LOGIN_FORM))

        async def post(self, request: Request) -> Any:
            form = await request.post()
            name, password = str(form.get("name", "")).strip()[:100], str(form.get("password", ""))[:1024]
            sid, wait = (await gate.sign_in(name, password, request.remote or "")) if name and password else (None, 0)
            if wait:
                return _html(self, page("Sign in", f'<p class="flash" id="flash">Too many failed attempts: try again in '
                                                   f'{int(wait) + 1} s.</p>' + LOGIN_FORM),
                             status=429, headers={"Retry-After": str(int(wait) + 1)})
            if sid is None:
                return _html(self, page("Sign in", '<p class="flash" id="flash">Name or password not accepted.</p>'
                                        + LOGIN_FORM), status=401)
            return _redirect(ctx, "/review", sid)

    @app.page("/review/logout")
    class LogoutPage(View):
        async def post(self, request: Request) -> Any:
            await gate.sign_out(request)
            return _redirect(ctx, "/review/login", "")

    @app.page("/review")
    class QueuePage(View):
        async def get(self, request: Request) -> Any:
            who = await gate.principal(request)
            if who is None:
                return _redirect(ctx, "/review/login")
            f = _filters(request)
            now = utcnow()
            items = ctx.review_queue.select(now=now, **f)
            flash = request.query.get("done")
            rows = "".join(
                f"<tr class='item'><td><a href='/review/{quote(r.interactionId, safe='')}'>{html.escape(r.interactionId)}</a>"
                f"</td><td>{html.escape(r.stage)}</td><td>{html.escape(r.reason)}</td><td>{_age(int((now - r.openedAt).total_seconds()))}</td>"
                f"<td>{r.count}</td><td>{html.escape(r.status)}</td><td class='muted'>{html.escape(r.detail or '')}</td></tr>"
                for r in items)
            reasons = sorted({r.reason.split(":")[0] for r in ctx.review_queue.entries.values()})
            options = "".join(f"<option{' selected' if f['reason'] == x else ''}>{html.escape(x)}</option>" for x in reasons)
            body = (
                (f"<p class='flash' id='flash'>{html.escape(flash)}</p>" if flash else "")
                + "<form method='get' action='/review'>Reason <select name='reason'><option value=''>any</option>"
                + options + "</select> Older than <select name='min_age'><option value=''>any age</option>"
                + "".join(f"<option value='{s}'{' selected' if f['min_age'] == s else ''}>{_age(s)}</option>"
                          for s in (300, 3600, 86400))
                + "</select> Status <select name='status'>"
                + "".join(f"<option{' selected' if f['status'] == s else ''}>{s}</option>"
                          for s in ("OPEN", "RESUBMITTED", "DISMISSED"))
                + "</select> <button>Filter</button></form>"
                + ("<p><a href='/credits' id='credit-link'>Issue a credit note</a></p>" if who.can_act else "")
                + f"<p id='count'>{len(items)} item(s)</p><table id='queue'><tr><th>interaction</th><th>stage</th>"
                + "<th>reason</th><th>age</th><th>times</th><th>status</th><th>detail</th></tr>" + rows + "</table>")
            return _html(self, page("Review queue", body, who))

    @app.page("/review/{iid}")
    class ItemPage(View):
        async def get(self, request: Request, iid: str) -> Any:
            who = await gate.principal(request)
            if who is None:
                return _redirect(ctx, "/review/login")
            r = ctx.review_queue.entries.get(iid)
            if r is None:
                return _html(self, page("Not found", "<p>No such review item. <a href='/review'>Back</a></p>", who), 404)
            from app.ops.trace import trace

            story = await trace(iid)
            facts = interaction_summary(r) or {}
            led = story.get("ledger") or {}
            e = html.escape
            hist = "".join(f"<tr><td>{e(h['time'][:19])}</td><td>{e(h['stage'])}</td><td>{e(h['what'])}</td>"
                           f"<td>{e(h.get('reason') or '')}</td><td>{e(h.get('actor') or '')}</td></tr>"
                           for h in _history(story))
            states = " → ".join(e(s.get("state", "?")) for s in story.get("ledgerHistory", []))
            actions = ""
            if r.status == "OPEN" and not who.can_act:
                actions = (f"<p class='muted' id='readonly'>Your role ({e(who.role)}) reads the queue; "
                           "an operator resubmits or dismisses.</p>")
            elif r.status == "OPEN":
                customer = ("<label>Customer id (if the interaction has none) <input name='customerId' id='customerId'>"
                            "</label> " if r.stage == "intake" else "")
                actions = (f"<h2>Act</h2><form method='post' action='/review/{quote(iid, safe='')}/resubmit'>{customer}"
                           "<button type='submit' id='resubmit'>Resubmit</button></form>"
                           f"<form method='post' action='/review/{quote(iid, safe='')}/dismiss'>"
                           "<label>Note <input name='note' id='note' required maxlength='1000'></label> "
                           "<button type='submit' id='dismiss'>Dismiss</button></form>")
            body = (
                f"<p><a href='/review'>← queue</a></p><table>"
                f"<tr><th>stage</th><td>{e(r.stage)}</td></tr><tr><th>reason</th><td id='reason'>{e(r.reason)}</td></tr>"
                f"<tr><th>detail</th><td>{e(r.detail or '')}</td></tr><tr><th>status</th><td id='status'>{e(r.status)}</td></tr>"
                f"<tr><th>opened</th><td>{e(r.openedAt.isoformat()[:19])} ({r.count}×)</td></tr>"
                + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts.items())
                + f"<tr><th>ledger</th><td>{e(str(led.get('state', 'no entry')))} {e(led.get('reason') or '')}"
                  f"<br><span class='muted'>{states}</span></td></tr></table>"
                + actions + "<h2>History</h2><table id='history'><tr><th>time</th><th>stage</th><th>what</th>"
                  "<th>reason</th><th>who</th></tr>" + hist + "</table>")
            return _html(self, page(f"Review {iid}", body, who))

    @app.page("/review/{iid}/{action}")
    class ItemActionPage(View):
        async def post(self, request: Request, iid: str, action: str) -> Any:
            who = await gate.principal(request)
            if who is None:
                return _redirect(ctx, "/review/login")
            if not who.can_act:
                return _html(self, page("Forbidden", f"<p id='flash'>Your role ({html.escape(who.role)}) cannot "
                                        f"{html.escape(action)}. <a href='/review'>Back</a></p>", who), 403)
            if action not in ("resubmit", "dismiss"):
                return _html(self, page("Not found", "<p>Unknown action.</p>", who), 404)
            form = await request.post()
            note = str(form.get("note", "")).strip() or None
            customer = str(form.get("customerId", "")).strip() or None
            problem = precheck(ctx, ctx.review_queue.entries.get(iid), action, customer)
            if action == "dismiss" and not note:
                problem = "a dismissal needs a note"
            if problem:
                return _redirect(ctx, "/review?" + urlencode({"done": f"{iid}: {problem}"}))
            await publish_action(ctx, ReviewAction(interactionId=iid, action=action, actor=who.actor, note=note,  # type: ignore[arg-type]
                                              customerId=customer))
            return _redirect(ctx, "/review?" + urlencode({"done": f"{iid}: {action} sent"}))
