// tests/ui/drive.cjs — drives zgate-api's web UI in a Chromium that
// tests/e2e/t_web_ui.sh started (puppeteer-core over the DevTools
// endpoint ZG_UI_WS), as an admin would: sign-in, editor, validation
// errors, save, activate, diff, history, and a lost activation race.
// Checks with curl, as a relay, what relays are served. Exits 0 when every
// check passed; prints "FAIL: ..." and exits 1 at the first that did not.
'use strict';

const puppeteer = require('puppeteer-core');
const { execFileSync } = require('child_process');

const env = (k) => {
	const v = process.env[k];
	if (!v) {
		console.error('FAIL: ' + k + ' is not set');
		process.exit(2);
	}
	return v;
};
const BASE = env('ZG_UI_BASE');       // https://127.0.0.1:PORT
const WS = env('ZG_UI_WS');           // the browser's DevTools endpoint
const TOKEN = env('ZG_UI_TOKEN');     // the admin token
const CA = env('ZG_UI_CA');           // for curl
const RELAY = env('ZG_UI_RELAY');     // PATH prefix of the relay cert: PATH.crt, PATH.key
const CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const T = 10000;

function fail(msg) {
	throw new Error(msg);
}
// ZG_UI_SHOTS=DIR: a screenshot of the page as each step ends, for a look
// at the UI (NN-step.png); the test never reads them.
const SHOTS = process.env.ZG_UI_SHOTS;
let shotPage = null, shotN = 0, shotName = 'start';
async function step(msg) {
	if (SHOTS && shotPage) {
		const n = String(++shotN).padStart(2, '0');
		await shotPage.screenshot({ path: SHOTS + '/' + n + '-' + shotName + '.png', fullPage: true });
	}
	shotName = msg.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 40);
	console.log('--- ' + msg);
}
function eq(got, want, what) {
	if (got !== want)
		fail(what + ': expected ' + JSON.stringify(want) + ', got ' + JSON.stringify(got));
}
function has(text, part, what) {
	if (typeof text !== 'string' || !text.includes(part))
		fail(what + ': expected to contain ' + JSON.stringify(part) + ', got ' + JSON.stringify(text));
}

// curl ARGS... → {code, body}, never through the browser.
function curl(method, path, extra, body) {
	const args = ['-sS', '--cacert', CA, '-X', method, '-o', '-', '-w', '\n%{http_code}', ...extra];
	if (body !== undefined)
		args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body));
	args.push(BASE + path);
	const out = execFileSync('curl', args, { encoding: 'utf8' });
	const k = out.lastIndexOf('\n');
	return { code: Number(out.slice(k + 1)), body: out.slice(0, k) };
}
const asRelay = ['--cert', RELAY + '.crt', '--key', RELAY + '.key'];
const asAdmin = ['-H', 'Authorization: Bearer ' + TOKEN];

const V1 = [
	'version: 1',
	'default_action: deny',
	'clients:',
	'  agent-1:',
	'    rules:',
	'      - id: web',
	'        action: allow',
	'        destinations: ["203.0.113.0/24"]',
	'        protocols: [tcp]',
	'        ports: ["443"]',
	'',
].join('\n');
// Line 7, column 17: "permit" is not an action.
const BAD = V1.replace('action: allow', 'action: permit');
const V2 = V1.replace('ports: ["443"]', 'ports: ["443", "8443"]') +
	['  agent-2:', '    rules:', '      - id: dns', '        action: allow',
		'        destinations: ["198.51.100.53/32"]', ''].join('\n');
const V3 = V1.replace('default_action: deny', 'default_action: allow');

async function main() {
	const browser = await puppeteer.connect({ browserWSEndpoint: WS, protocolTimeout: 30000 });
	const page = await browser.newPage();
	shotPage = page;
	page.setDefaultTimeout(T);
	const requests = [], problems = [];
	page.on('request', (r) => requests.push(r.url()));
	page.on('console', (m) => {
		if (m.type() === 'error' || m.type() === 'warning')
			problems.push('console ' + m.type() + ': ' + m.text() + ' (' + ((m.location() || {}).url || '') + ')');
	});
	page.on('pageerror', (e) => problems.push('page error: ' + e.message));

	const text = (sel) => page.$eval(sel, (e) => e.textContent);
	const visible = (sel) => page.waitForSelector(sel, { visible: true });
	const hidden = (sel) => page.waitForSelector(sel, { hidden: true });
	// waits until sel's text contains part (an error names what it saw)
	async function waitText(sel, part, what) {
		try {
			await page.waitForFunction((s, p) => {
				const e = document.querySelector(s);
				return e && !e.closest('[hidden]') && e.textContent.includes(p);
			}, { timeout: T }, sel, part);
		} catch (e) {
			const got = await page.$eval(sel, (x) => x.textContent).catch(() => '(no such element)');
			fail(what + ': ' + sel + ' never contained ' + JSON.stringify(part) + '; it holds ' + JSON.stringify(got));
		}
	}
	// replaces the text of a textarea/input as typed
	async function typeInto(sel, value) {
		await page.$eval(sel, (e) => { e.value = ''; });
		await page.focus(sel);
		if (value.length > 0)
			await page.keyboard.sendCharacter(value);
	}
	async function go(hash) {
		await page.evaluate((h) => { location.hash = h; }, hash);
	}
	async function activeBadgeRow() {
		return page.$$eval('#versions tbody tr', (rows) =>
			rows.filter((r) => r.querySelector('.badge')).map((r) => r.dataset.id));
	}

	await step('the page: / redirects to /ui/, served with its headers');
	const res = await page.goto(BASE + '/', { waitUntil: 'domcontentloaded' });
	eq(res.url(), BASE + '/ui/', 'the page after GET /');
	eq(res.status(), 200, 'status of /ui/');
	const h = res.headers();
	eq(h['content-security-policy'], CSP, 'Content-Security-Policy');
	eq(h['x-content-type-options'], 'nosniff', 'X-Content-Type-Options');
	eq(h['referrer-policy'], 'no-referrer', 'Referrer-Policy');
	eq(h['cache-control'], 'no-store', 'Cache-Control');
	eq(h['content-type'], 'text/html; charset=utf-8', 'Content-Type');
	const chain = res.request().redirectChain();
	eq(chain.length, 1, 'redirections before /ui/');
	eq(chain[0].response().status(), 302, 'the redirection of /');

	await step('no token, no certificate: the sign-in');
	await visible('#signin-view');
	eq(await page.$eval('#app', (e) => e.hidden), true, 'the app hidden before signing in');

	await step('a wrong token is refused, with the error shown');
	await typeInto('#token', 'not-the-token-0123456789');
	await page.keyboard.press('Enter'); // the form, without a mouse
	await waitText('#signin-error', 'The token was refused', 'wrong token');
	eq(await page.$eval('#app', (e) => e.hidden), true, 'the app after a wrong token');
	eq(await page.evaluate(() => sessionStorage.getItem('zgate.adminToken')), null, 'a refused token kept');

	await step('the right token signs in');
	await typeInto('#token', TOKEN);
	await page.click('#signin');
	await visible('#versions-view');
	await waitText('#who', 'admin token', 'signed in');
	await visible('#versions-empty');
	eq(await page.evaluate(() => sessionStorage.getItem('zgate.adminToken')), TOKEN, 'the token in sessionStorage');

	await step('an invalid policy: the parser\'s error and its line');
	await page.focus('#nav-new');
	await page.keyboard.press('Enter');
	await visible('#editor-view');
	await waitText('#editor-base', 'No version is active', 'the editor with no active version');
	eq(await page.$eval('#doc', (e) => e.value), '', 'the editor with no active version');
	await typeInto('#doc', BAD);
	await page.click('#validate');
	await visible('#editor-error');
	await waitText('#editor-error-text', 'policy:7:17:', 'the validation error');
	has(await text('#editor-error-text'), '"permit" is not an action', 'the validation error');
	eq(await text('#doc-excerpt .bad'), '> 7 |         action: permit', 'the marked line');
	const sel = await page.$eval('#doc', (e) => [e.selectionStart, e.selectionEnd, document.activeElement === e]);
	const line7 = BAD.split('\n').slice(0, 6).join('\n').length + 1;
	eq(JSON.stringify(sel), JSON.stringify([line7, line7 + '        action: permit'.length, true]),
		'the editor\'s selection on line 7');
	has(await text('#editor-goto'), 'Go to line 7', 'the go-to-line button');
	// Save refuses the same document, with the same error
	await page.click('#save');
	await waitText('#editor-error-text', 'policy:7:17:', 'saving an invalid document');
	let r = curl('GET', '/api/v1/policies', asAdmin);
	eq(r.code, 200, 'GET /api/v1/policies');
	eq(JSON.parse(r.body).policies.length, 0, 'versions after an invalid save');

	await step('a valid policy: validated, saved, activated');
	await typeInto('#doc', V1);
	await typeInto('#comment', 'first <b>policy</b> & "quotes"');
	await page.click('#validate');
	await waitText('#editor-ok', 'Valid: 1 client, 1 rule', 'validating a valid document');
	eq(await page.$eval('#editor-error', (e) => e.hidden), true, 'the error box after a valid document');
	await page.click('#save');
	await page.waitForFunction(() => /^#\/version\/[0-9]+$/.test(location.hash));
	const id1 = Number(await page.evaluate(() => location.hash.split('/')[2]));
	await waitText('#version-h', 'Version ' + id1, 'the saved version');
	await waitText('#status', 'Saved as version ' + id1, 'the saved status');
	eq(await text('#version-doc'), V1, 'the saved document as shown');
	// the comment is shown as text, not markup
	has(await page.$eval('#version-meta', (e) => e.textContent), 'first <b>policy</b> & "quotes"', 'the comment');
	eq(await page.$('#version-meta b'), null, 'markup from a comment in the page');
	await page.click('#version-activate');
	await visible('#confirm');
	await waitText('#confirm-text', 'No version is active now', 'the confirmation of the first activation');
	await page.click('#confirm-ok');
	await waitText('#status', 'Version ' + id1 + ' is active now', 'activating');
	await go('#/versions');
	await page.waitForFunction((id) => {
		const r = document.querySelector('#versions tbody tr[data-id="' + id + '"] .badge');
		return r && r.textContent === 'active';
	}, {}, id1);
	eq(JSON.stringify(await activeBadgeRow()), JSON.stringify([String(id1)]), 'rows marked active');

	await step('relays get exactly the text typed');
	r = curl('GET', '/api/v1/policy', asRelay);
	eq(r.code, 200, 'GET /api/v1/policy as relay r1');
	eq(r.body, V1, 'the active document served to a relay');

	await step('a second version, prefilled with the active one; its diff');
	await go('#/new');
	await visible('#editor-view');
	await page.waitForFunction((d) => document.getElementById('doc').value === d, {}, V1);
	await waitText('#editor-base', 'Starts from version ' + id1 + ' (active)', 'the editor prefilled');
	await typeInto('#doc', V2);
	await typeInto('#comment', 'agent-2 and 8443');
	await page.click('#save');
	await page.waitForFunction((id) => /^#\/version\/[0-9]+$/.test(location.hash) && location.hash !== '#/version/' + id, {}, id1);
	const id2 = Number(await page.evaluate(() => location.hash.split('/')[2]));
	await waitText('#version-h', 'Version ' + id2, 'the second version');
	eq(await page.$eval('#version-activate', (e) => e.hidden), false, 'Activate offered for an inactive version');
	await page.click('#version-diff');
	await visible('#diff-view');
	await waitText('#diff-h', 'Version ' + id2 + ' against the active version ' + id1, 'the diff heading');
	const lines = await page.$$eval('#diff .line', (l) => l.map((x) => [x.className, x.textContent]));
	const changed = lines.filter(([c]) => c !== 'line same' && c !== 'line gap');
	eq(JSON.stringify(changed), JSON.stringify([
		['line del', '-         ports: ["443"]'],
		['line add', '+         ports: ["443", "8443"]'],
		['line add', '+   agent-2:'],
		['line add', '+     rules:'],
		['line add', '+       - id: dns'],
		['line add', '+         action: allow'],
		['line add', '+         destinations: ["198.51.100.53/32"]'],
	]), 'the changed lines of the diff');
	await waitText('#diff-summary', '6 lines added (+), 1 removed (-)', 'the diff summary');

	await step('an activation race: the active version changed behind the page');
	await go('#/versions');
	await page.waitForSelector('#versions tbody tr[data-id="' + id2 + '"] button.activate');
	r = curl('POST', '/api/v1/policies', asAdmin, { document: V3, comment: 'behind the page' });
	eq(r.code, 201, 'POST a third version with curl: ' + r.body);
	const id3 = JSON.parse(r.body).id;
	r = curl('POST', '/api/v1/policies/' + id3 + '/activate', asAdmin, { expected_active: id1 });
	eq(r.code, 200, 'activate the third version with curl: ' + r.body);
	// the page still believes id1 is active
	await page.click('#versions tbody tr[data-id="' + id2 + '"] button.activate');
	await visible('#confirm');
	await waitText('#confirm-text', 'Version ' + id2 + ' replaces version ' + id1, 'the confirmation names the version it replaces');
	await page.click('#confirm-ok');
	await waitText('#error', 'was not activated', 'the 409');
	has(await text('#error'), 'the active policy is ' + id3, 'the 409');
	await page.waitForFunction((id) => {
		const r = document.querySelector('#versions tbody tr[data-id="' + id + '"] .badge');
		return r !== null;
	}, {}, id3);
	eq(JSON.stringify(await activeBadgeRow()), JSON.stringify([String(id3)]), 'rows marked active after the 409');
	r = curl('GET', '/api/v1/policy', asRelay);
	eq(r.body, V3, 'the active document after the lost race');

	await step('an activation whose answer is lost (503): the page says it may have taken effect');
	// zgate-api answers 503 when its database connection broke after the
	// statement was sent; the page must not say "not activated"
	await page.setRequestInterception(true);
	const lose = (req) => {
		const u = req.url();
		if (req.method() === 'POST' && (u.endsWith('/activate') || u.endsWith('/api/v1/policies') ||
			u.endsWith('/api/v1/policies/validate')))
			req.respond({ status: 503, contentType: 'application/json', headers: { 'Retry-After': '1' },
				body: '{"error":"database unavailable"}' });
		else
			req.continue();
	};
	page.on('request', lose);
	await page.click('#versions tbody tr[data-id="' + id2 + '"] button.activate');
	await visible('#confirm');
	await page.click('#confirm-ok');
	await waitText('#error', 'was lost', 'the lost answer');
	has(await text('#error'), 'may have taken effect', 'the lost answer');
	has(await text('#error'), 'Active now: version ' + id3, 'the lost answer names what is active');
	// a save whose answer is lost may have been stored; a validation stores nothing
	await go('#/new');
	await typeInto('#doc', V2 + '# lost\n');
	await page.click('#validate');
	await waitText('#editor-error-text', 'database unavailable', 'a validation answered 503');
	if ((await text('#editor-error-text')).includes('saved'))
		fail('a validation answered 503 says something about saving: ' + await text('#editor-error-text'));
	await page.click('#save');
	await waitText('#error', 'may have been saved', 'a save answered 503');
	page.off('request', lose);
	await page.setRequestInterception(false);

	await step('the activation history');
	await page.focus('#nav-history');
	await page.keyboard.press('Enter');
	await visible('#history-view');
	await page.waitForFunction(() => document.querySelectorAll('#history tbody tr').length >= 2);
	const hist = await page.$$eval('#history tbody tr', (rows) => rows.map((r) => [r.cells[1].textContent, r.cells[2].textContent]));
	eq(JSON.stringify(hist), JSON.stringify([['Version ' + id3, 'token'], ['Version ' + id1, 'token']]), 'the history');

	await step('signing out forgets the token');
	await page.click('#signout');
	await visible('#signin-view');
	eq(await page.evaluate(() => sessionStorage.getItem('zgate.adminToken')), null, 'the token after signing out');

	await step('nothing but the page\'s own files and API; no CSP violation, no script error');
	const foreign = requests.filter((u) => !u.startsWith(BASE + '/'));
	eq(JSON.stringify(foreign), '[]', 'requests to other origins');
	for (const need of ['/ui/', '/ui/app.js', '/ui/app.css'])
		if (!requests.includes(BASE + need))
			fail('the page did not load ' + need);
	// the answers 400 (invalid), 401 (sign-in), 409 (the race) and 503 (the lost answer) are
	// logged by Chromium as failed loads; nothing else may be
	const bad = problems.filter((p) => !/Failed to load resource: the server responded with a status of (40[019]|503)/.test(p));
	eq(JSON.stringify(bad), '[]', 'console errors and page errors');
	await page.close();
	await browser.disconnect();
	console.log('web UI: every check passed (' + requests.length + ' requests)');
}

main().catch((e) => {
	console.error('FAIL: ' + e.message);
	process.exit(1);
});
