// zgate-api's web UI: policy versions over the REST API of zgate-api
// (README "Policies"). Plain JavaScript, no library. Everything that comes
// from the server or the user is put in the page with textContent or as
// attribute values, never parsed as HTML. The admin token, when one is
// used, stays in this tab's sessionStorage and goes out as a Bearer token;
// a browser with an admin client certificate needs none.
'use strict';

(function () {
	const TOKEN_KEY = 'zgate.adminToken';
	const PAGE = 50;          // versions per page
	const HISTORY = 100;      // activations shown
	const DIFF_CELLS = 4e6;   // a larger line diff is shown as one replaced block

	const state = {
		token: null,
		who: '',
		active: null,      // the active version's id, as the list last said
		versions: [],
		next: null,
		pendingActivate: null,
		keepStatus: false, // the next navigation keeps the status line (a save's)
	};

	const $ = (id) => document.getElementById(id);

	// ------------------------------------------------------------ helpers

	// el('td', {class: 'num'}, 'text', child...): an element; strings become
	// text nodes, so nothing given here is ever read as HTML.
	function el(tag, attrs, ...children) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === null || v === undefined || v === false)
				continue;
			e.setAttribute(k, v === true ? '' : String(v));
		}
		for (const c of children) {
			if (c === null || c === undefined)
				continue;
			e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
		}
		return e;
	}

	function clear(node) {
		while (node.firstChild)
			node.removeChild(node.firstChild);
	}

	function setStatus(text) {
		$('status').textContent = text || '';
	}

	function showError(text) {
		const e = $('error');
		e.textContent = text || '';
		e.hidden = !text;
	}

	class ApiError extends Error {
		constructor(status, message, data) {
			super(message);
			this.status = status;
			this.data = data || {};
		}
	}

	// One call to zgate-api. Returns {status, data} for any HTTP answer;
	// throws ApiError(0) when the server cannot be reached.
	async function call(method, path, body) {
		const headers = { Accept: 'application/json' };
		if (state.token)
			headers.Authorization = 'Bearer ' + state.token;
		const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
		if (body !== undefined) {
			headers['Content-Type'] = 'application/json';
			init.body = JSON.stringify(body);
		}
		let res;
		try {
			res = await fetch(path, init);
		} catch (e) {
			throw new ApiError(0, 'zgate-api cannot be reached (' + e.message + ')');
		}
		const text = await res.text();
		let data = null;
		try {
			data = text ? JSON.parse(text) : null;
		} catch (e) {
			data = null;
		}
		return { status: res.status, data };
	}

	function errorText(r) {
		if (r.data && typeof r.data.error === 'string')
			return r.data.error;
		return 'zgate-api answered ' + r.status;
	}

	// call() that expects a 2xx answer; throws ApiError otherwise, and
	// goes back to the sign-in on 401.
	async function api(method, path, body) {
		const r = await call(method, path, body);
		if (r.status >= 200 && r.status < 300)
			return r;
		if (r.status === 401) {
			signedOut('Signed out: ' + errorText(r));
			throw new ApiError(401, errorText(r), r.data);
		}
		throw new ApiError(r.status, errorText(r), r.data);
	}

	function versionLabel(id) {
		return id === null || id === undefined ? 'none' : 'version ' + id;
	}

	// ------------------------------------------------------------ sign-in

	function signedOut(why) {
		state.token = null;
		sessionStorage.removeItem(TOKEN_KEY);
		$('app').hidden = true;
		$('signout').hidden = true;
		$('who').textContent = '';
		showView('signin-view');
		const e = $('signin-error');
		e.textContent = why || '';
		e.hidden = !why;
		$('token').focus();
	}

	// Tries the API with what the browser holds (a certificate, or the
	// token of this tab). Returns true when signed in.
	async function trySignIn() {
		const r = await call('GET', '/api/v1/policies?limit=1');
		if (r.status === 200) {
			state.who = state.token ? 'Signed in with the admin token' : 'Signed in with a client certificate';
			$('who').textContent = state.who;
			$('signout').hidden = !state.token;
			$('app').hidden = false;
			$('signin-error').hidden = true;
			return true;
		}
		if (r.status === 401 || r.status === 403)
			return { refused: errorText(r), status: r.status };
		throw new ApiError(r.status, errorText(r), r.data);
	}

	async function onSignIn(ev) {
		ev.preventDefault();
		const t = $('token').value.trim();
		if (!t) {
			signedOut('Enter the admin token.');
			return;
		}
		state.token = t;
		try {
			const ok = await trySignIn();
			if (ok === true) {
				sessionStorage.setItem(TOKEN_KEY, t);
				$('token').value = '';
				route();
				return;
			}
			signedOut('The token was refused: ' + ok.refused);
		} catch (e) {
			signedOut(e.message);
		}
	}

	// ------------------------------------------------------------ views

	function showView(id) {
		for (const v of document.querySelectorAll('.view'))
			v.hidden = v.id !== id;
		for (const a of document.querySelectorAll('nav a')) {
			const cur = (id === 'versions-view' && a.id === 'nav-versions') ||
				(id === 'editor-view' && a.id === 'nav-new') ||
				(id === 'history-view' && a.id === 'nav-history');
			if (cur)
				a.setAttribute('aria-current', 'page');
			else
				a.removeAttribute('aria-current');
		}
	}

	// Moves the focus to a view's heading, so a keyboard or screen reader
	// user lands on what changed.
	function focusHeading(id) {
		const h = $(id);
		if (h)
			h.focus();
	}

	async function loadVersions(before) {
		let q = '/api/v1/policies?limit=' + PAGE;
		if (before)
			q += '&before=' + encodeURIComponent(before);
		const r = await api('GET', q);
		state.active = r.data.active === undefined ? null : r.data.active;
		if (!before)
			state.versions = [];
		state.versions = state.versions.concat(r.data.policies || []);
		state.next = r.data.next === undefined ? null : r.data.next;
	}

	function renderVersions() {
		const tb = $('versions').tBodies[0];
		clear(tb);
		$('active-line').textContent = state.active === null
			? 'No version is active: relays that fetch the policy get none.'
			: 'Active: version ' + state.active + '.';
		for (const p of state.versions) {
			const isActive = p.id === state.active;
			const actions = el('p', { class: 'actions' },
				el('a', { href: '#/version/' + p.id, 'aria-label': 'View version ' + p.id }, 'View'));
			if (!isActive) {
				if (state.active !== null)
					actions.append(el('a', { href: '#/diff/' + p.id, 'aria-label': 'Diff version ' + p.id + ' against the active one' }, 'Diff'));
				const b = el('button', { type: 'button', class: 'activate', 'data-id': p.id,
					'aria-label': 'Activate version ' + p.id }, 'Activate');
				b.addEventListener('click', () => askActivate(p.id));
				actions.append(b);
			}
			tb.append(el('tr', { 'data-id': p.id, class: isActive ? 'is-active' : null },
				el('th', { scope: 'row' }, String(p.id)),
				el('td', {}, isActive ? el('span', { class: 'badge' }, 'active') : ''),
				el('td', {}, el('time', { datetime: p.created }, String(p.created || ''))),
				el('td', {}, String(p.created_by || '')),
				el('td', { class: 'num' }, String(p.size) + ' B'),
				el('td', {}, String(p.comment || '')),
				el('td', {}, actions)));
		}
		$('versions-empty').hidden = state.versions.length > 0;
		$('versions-more').hidden = state.next === null;
	}

	async function viewVersions() {
		showView('versions-view');
		await loadVersions();
		renderVersions();
	}

	async function getVersion(id) {
		return (await api('GET', '/api/v1/policies/' + encodeURIComponent(id))).data;
	}

	async function viewVersion(id) {
		showView('version-view');
		const v = await getVersion(id);
		await loadVersions();
		const isActive = v.id === state.active;
		$('version-h').textContent = 'Version ' + v.id + (isActive ? ' (active)' : '');
		const meta = $('version-meta');
		clear(meta);
		const rows = [['Status', isActive ? 'active' : 'not active'], ['Created', v.created],
			['By', v.created_by], ['Comment', v.comment || '(none)'], ['Size', v.size + ' bytes'],
			['SHA-256', v.sha256]];
		if (v.clients !== undefined)
			rows.push(['Clients', String(v.clients)]);
		if (v.rules !== undefined)
			rows.push(['Rules', String(v.rules)]);
		for (const [k, val] of rows)
			meta.append(el('dt', {}, k), el('dd', {}, String(val === undefined || val === null ? '' : val)));
		$('version-doc').textContent = v.document;
		const act = $('version-activate');
		act.hidden = isActive;
		act.dataset.id = v.id;
		$('version-diff').hidden = isActive || state.active === null;
		$('version-diff').setAttribute('href', '#/diff/' + v.id);
		$('version-copy').setAttribute('href', '#/new/' + v.id);
	}

	// ------------------------------------------------------------ diff

	function splitLines(s) {
		if (s === '')
			return [];
		const l = s.split('\n');
		if (l[l.length - 1] === '')
			l.pop();
		return l;
	}

	// The line diff of a (old) against b (new): a list of {op, text} with op
	// ' ' (both), '-' (only in a) or '+' (only in b). Common head and tail
	// are cut first; the rest is a longest common subsequence, or, past
	// DIFF_CELLS, shown as all of a's lines out and b's in.
	function diffLines(a, b) {
		let start = 0;
		while (start < a.length && start < b.length && a[start] === b[start])
			start++;
		let ea = a.length, eb = b.length;
		while (ea > start && eb > start && a[ea - 1] === b[eb - 1]) {
			ea--;
			eb--;
		}
		const out = [];
		for (let i = 0; i < start; i++)
			out.push({ op: ' ', text: a[i] });
		const n = ea - start, m = eb - start;
		if (n * m > DIFF_CELLS) {
			for (let i = start; i < ea; i++)
				out.push({ op: '-', text: a[i] });
			for (let j = start; j < eb; j++)
				out.push({ op: '+', text: b[j] });
		} else {
			// len[i][j]: the LCS length of a[start+i..] and b[start+j..]
			const w = m + 1;
			const len = new Uint32Array((n + 1) * w);
			for (let i = n - 1; i >= 0; i--)
				for (let j = m - 1; j >= 0; j--)
					len[i * w + j] = a[start + i] === b[start + j]
						? len[(i + 1) * w + j + 1] + 1
						: Math.max(len[(i + 1) * w + j], len[i * w + j + 1]);
			let i = 0, j = 0;
			while (i < n && j < m) {
				if (a[start + i] === b[start + j]) {
					out.push({ op: ' ', text: a[start + i] });
					i++;
					j++;
				} else if (len[(i + 1) * w + j] >= len[i * w + j + 1]) {
					out.push({ op: '-', text: a[start + i] });
					i++;
				} else {
					out.push({ op: '+', text: b[start + j] });
					j++;
				}
			}
			for (; i < n; i++)
				out.push({ op: '-', text: a[start + i] });
			for (; j < m; j++)
				out.push({ op: '+', text: b[start + j] });
		}
		for (let i = ea; i < a.length; i++)
			out.push({ op: ' ', text: a[i] });
		return out;
	}

	async function viewDiff(id) {
		showView('diff-view');
		await loadVersions();
		const pre = $('diff');
		clear(pre);
		if (state.active === null) {
			$('diff-h').textContent = 'Diff of version ' + id;
			$('diff-summary').textContent = 'No version is active: nothing to compare with.';
			return;
		}
		const [v, act] = await Promise.all([getVersion(id), getVersion(state.active)]);
		$('diff-h').textContent = 'Version ' + v.id + ' against the active version ' + act.id;
		const d = diffLines(splitLines(act.document), splitLines(v.document));
		let add = 0, del = 0;
		const CONTEXT = 3;
		// keep 3 lines of context around each change
		const keep = new Uint8Array(d.length);
		d.forEach((x, k) => {
			if (x.op !== ' ')
				for (let c = Math.max(0, k - CONTEXT); c <= Math.min(d.length - 1, k + CONTEXT); c++)
					keep[c] = 1;
		});
		let skipped = 0;
		const flush = () => {
			if (skipped)
				pre.append(el('span', { class: 'line gap' }, '@@ ' + skipped + ' unchanged line' + (skipped === 1 ? '' : 's') + ' @@'));
			skipped = 0;
		};
		d.forEach((x, k) => {
			if (x.op === '+')
				add++;
			else if (x.op === '-')
				del++;
			if (!keep[k]) {
				skipped++;
				return;
			}
			flush();
			const cls = x.op === '+' ? 'line add' : x.op === '-' ? 'line del' : 'line same';
			pre.append(el('span', { class: cls }, x.op + ' ' + x.text));
		});
		flush();
		$('diff-summary').textContent = add === 0 && del === 0
			? 'Version ' + v.id + ' has the same lines as version ' + act.id + '.'
			: add + ' line' + (add === 1 ? '' : 's') + ' added (+), ' + del + ' removed (-), from version ' +
				act.id + ' (active) to version ' + v.id + '.';
	}

	// ------------------------------------------------------------ editor

	function editorMessage(ok, err) {
		$('editor-ok').textContent = ok || '';
		$('editor-ok').hidden = !ok;
		$('editor-error').hidden = !err;
		$('editor-error-text').textContent = err || '';
		if (!err) {
			clear($('doc-excerpt'));
			$('editor-goto').hidden = true;
		}
	}

	// Selects line (1-based) of the editor and scrolls it into view.
	function gotoLine(line, column) {
		const ta = $('doc');
		const lines = ta.value.split('\n');
		const ln = Math.min(Math.max(1, line), lines.length);
		let start = 0;
		for (let i = 0; i < ln - 1; i++)
			start += lines[i].length + 1;
		const end = start + lines[ln - 1].length;
		ta.focus();
		ta.setSelectionRange(start, end);
		const lh = parseFloat(getComputedStyle(ta).lineHeight) || 18;
		ta.scrollTop = Math.max(0, (ln - 1) * lh - ta.clientHeight / 3);
		$('editor-goto').dataset.line = String(ln);
		$('editor-goto').dataset.column = String(column || 1);
	}

	// The parser's error: its text, the lines around its line with that
	// line marked (and a caret under its column), and the editor's
	// selection on it.
	function showParseError(data, fallback) {
		const text = data && typeof data.error === 'string' ? data.error : fallback;
		editorMessage('', text);
		const line = data && Number.isInteger(data.line) ? data.line : 0;
		const column = data && Number.isInteger(data.column) ? data.column : 0;
		const ex = $('doc-excerpt');
		clear(ex);
		if (line < 1) {
			ex.hidden = true;
			return;
		}
		ex.hidden = false;
		const lines = $('doc').value.split('\n');
		const width = String(Math.min(lines.length, line + 2)).length;
		for (let i = Math.max(1, line - 2); i <= Math.min(lines.length, line + 2); i++) {
			const num = String(i).padStart(width, ' ');
			if (i === line) {
				ex.append(el('span', { class: 'line bad', 'aria-label': 'line ' + i + ', the error' }, '> ' + num + ' | ' + lines[i - 1]));
				if (column > 0)
					ex.append(el('span', { class: 'line bad caret', 'aria-hidden': 'true' }, ' '.repeat(width + 5 + column - 1) + '^'));
			} else {
				ex.append(el('span', { class: 'line' }, '  ' + num + ' | ' + lines[i - 1]));
			}
		}
		const g = $('editor-goto');
		g.hidden = false;
		g.textContent = 'Go to line ' + line;
		gotoLine(line, column);
	}

	async function viewEditor(fromId) {
		showView('editor-view');
		editorMessage('', '');
		await loadVersions();
		const base = fromId !== undefined ? fromId : state.active;
		let doc = '';
		if (base !== null && base !== undefined) {
			doc = (await getVersion(base)).document;
			$('editor-base').textContent = 'Starts from version ' + base +
				(base === state.active ? ' (active)' : '') + '. Saving makes a new version; it does not activate it.';
		} else {
			$('editor-base').textContent = 'No version is active: this starts empty. Saving makes a new version; it does not activate it.';
		}
		$('doc').value = doc;
		$('comment').value = '';
	}

	function editorBody() {
		return { document: $('doc').value, comment: $('comment').value };
	}

	async function onValidate() {
		editorMessage('', '');
		const r = await call('POST', '/api/v1/policies/validate', editorBody());
		if (r.status === 200 && r.data && r.data.ok) {
			editorMessage('Valid: ' + r.data.clients + ' client' + (r.data.clients === 1 ? '' : 's') + ', ' +
				r.data.rules + ' rule' + (r.data.rules === 1 ? '' : 's') + '.', '');
			return;
		}
		if (r.status === 401)
			return signedOut('Signed out: ' + errorText(r));
		showParseError(r.data, errorText(r));
	}

	async function onSave() {
		editorMessage('', '');
		const r = await call('POST', '/api/v1/policies', editorBody());
		if (r.status === 201 || r.status === 200) {
			const id = r.data.id;
			setStatus(r.status === 201 ? 'Saved as version ' + id + ' (not active yet).'
				: 'This document is version ' + id + ' already: nothing saved.');
			if (location.hash === '#/version/' + id) {
				await route();
				return;
			}
			state.keepStatus = true;
			location.hash = '#/version/' + id;
			return;
		}
		if (r.status === 401)
			return signedOut('Signed out: ' + errorText(r));
		if (r.status === 503) {
			// zgate-api may have stored it before the answer was lost;
			// saving again is safe: the same document is one version
			showError('The answer was lost (' + errorText(r) + '): the version may have been saved. ' +
				'Save again: the same document is never stored twice.');
			return;
		}
		showParseError(r.data, errorText(r));
	}

	// ------------------------------------------------------------ activate

	// Asks before activating id, naming the version it replaces; the
	// activation then says which one that is (expected_active), so a
	// version another admin activated meanwhile is not replaced unseen.
	async function askActivate(id) {
		showError('');
		const d = $('confirm');
		state.pendingActivate = { id, expected: state.active };
		$('confirm-h').textContent = 'Activate version ' + id + '?';
		$('confirm-text').textContent = state.active === null
			? 'Version ' + id + ' becomes the policy relays fetch. No version is active now.'
			: 'Version ' + id + ' replaces version ' + state.active + ', the active one now, as the policy relays fetch.';
		$('confirm-ok').textContent = 'Activate version ' + id;
		d.showModal();
		$('confirm-cancel').focus();
	}

	async function doActivate() {
		const p = state.pendingActivate;
		$('confirm').close();
		state.pendingActivate = null;
		if (!p)
			return;
		const r = await call('POST', '/api/v1/policies/' + encodeURIComponent(p.id) + '/activate',
			{ expected_active: p.expected });
		if (r.status === 200) {
			setStatus('Version ' + p.id + ' is active now (it replaced ' + versionLabel(p.expected) + ').');
			await route();
			return;
		}
		if (r.status === 401)
			return signedOut('Signed out: ' + errorText(r));
		if (r.status === 409) {
			const now = r.data && r.data.active !== undefined ? r.data.active : null;
			await route();
			showError('Version ' + p.id + ' was not activated: ' + errorText(r) +
				'. Someone else activated ' + versionLabel(now) +
				' since this page was loaded; look at it, then activate again if you still want to.');
			return;
		}
		if (r.status === 503) {
			// the database took the activation, or not: show what is true now
			await route();
			showError('The answer to activating version ' + p.id + ' was lost (' + errorText(r) +
				'): it may have taken effect. Active now: ' + versionLabel(state.active) +
				'; activate again if that is not version ' + p.id + '.');
			return;
		}
		showError('Version ' + p.id + ' was not activated: ' + errorText(r));
	}

	// ------------------------------------------------------------ history

	async function viewHistory() {
		showView('history-view');
		const r = await api('GET', '/api/v1/policy/activations?limit=' + HISTORY);
		const tb = $('history').tBodies[0];
		clear(tb);
		const list = r.data.activations || [];
		for (const a of list)
			tb.append(el('tr', {},
				el('td', {}, el('time', { datetime: a.at }, String(a.at || ''))),
				el('td', {}, el('a', { href: '#/version/' + a.policy_id }, 'Version ' + a.policy_id)),
				el('td', {}, String(a.by || ''))));
		$('history-empty').hidden = list.length > 0;
	}

	// ------------------------------------------------------------ routing

	// #/versions, #/version/ID, #/diff/ID, #/new, #/new/ID, #/history
	async function route() {
		if ($('app').hidden)
			return;
		const h = location.hash.replace(/^#\/?/, '');
		const [what, arg] = h.split('/');
		const id = arg !== undefined && /^[0-9]{1,18}$/.test(arg) ? Number(arg) : undefined;
		try {
			switch (what) {
			case 'version':
				if (id === undefined)
					break;
				await viewVersion(id);
				focusHeading('version-h');
				return;
			case 'diff':
				if (id === undefined)
					break;
				await viewDiff(id);
				focusHeading('diff-h');
				return;
			case 'new':
				await viewEditor(id);
				focusHeading('editor-h');
				return;
			case 'history':
				await viewHistory();
				focusHeading('history-h');
				return;
			default:
				break;
			}
			await viewVersions();
			if (what !== '' && what !== 'versions')
				setStatus('No such page: showing the versions.');
			focusHeading('versions-h');
		} catch (e) {
			if (e instanceof ApiError && e.status === 401)
				return;
			showError(e.message);
		}
	}

	async function start() {
		$('signin-form').addEventListener('submit', onSignIn);
		$('signout').addEventListener('click', () => {
			setStatus('');
			showError('');
			signedOut('Signed out.');
		});
		$('validate').addEventListener('click', () => onValidate().catch((e) => showError(e.message)));
		$('save').addEventListener('click', () => onSave().catch((e) => showError(e.message)));
		$('editor-goto').addEventListener('click', (ev) =>
			gotoLine(Number(ev.currentTarget.dataset.line), Number(ev.currentTarget.dataset.column)));
		$('version-activate').addEventListener('click', (ev) => askActivate(Number(ev.currentTarget.dataset.id)));
		$('versions-more').addEventListener('click', async () => {
			try {
				await loadVersions(state.next);
				renderVersions();
			} catch (e) {
				showError(e.message);
			}
		});
		$('confirm-ok').addEventListener('click', () => doActivate().catch((e) => showError(e.message)));
		$('confirm-cancel').addEventListener('click', () => {
			state.pendingActivate = null;
			$('confirm').close();
		});
		window.addEventListener('hashchange', () => {
			showError('');
			if (!state.keepStatus)
				setStatus('');
			state.keepStatus = false;
			route();
		});
		state.token = sessionStorage.getItem(TOKEN_KEY);
		try {
			const ok = await trySignIn();
			if (ok === true) {
				await route();
				return;
			}
			// without a token, a 401 only means "sign in"; a 403 is a
			// certificate the browser presented that is not an admin's
			signedOut(state.token ? 'The saved token was refused: ' + ok.refused
				: ok.status === 403 ? 'The certificate of this browser is not an admin\'s (' + ok.refused + '): sign in with the token.' : '');
		} catch (e) {
			signedOut(e.message);
		}
	}

	document.addEventListener('DOMContentLoaded', start);
})();
