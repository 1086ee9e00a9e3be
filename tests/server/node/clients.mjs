// tests/server/node/clients.mjs
//
// Drives a beanstalkd-protocol server (conq-beanstalkd, or beanstalkd itself)
// with two published Node.js clients at once, jackd 2.2.2 and fivebeans
// 1.5.0, every connection its own socket:
//
//   1. tubes     use, list-tube-used, watch, ignore, list-tubes(-watched), stats
//   2. commands  peek variants, kick-job, kick, bury, touch, reserve-job,
//                reserve-with-timeout (TIMED_OUT) and the NOT_FOUND replies
//   3. pause     pause-tube from both clients
//   4. order     one worker draining a prefilled tube gets the jobs by
//                priority, equal priorities in put order; a fivebeans worker
//                pipelines its reserves; a delayed urgent job waits its turn
//   5. workload  a fivebeans producer pipelines 90 jobs into three tubes
//                (priorities from 0 to 2^32-1, some delayed 1 s, bodies up to
//                50 KB holding CRLF and multi-byte UTF-8); four workers, two
//                per library, reserve, and by the action written in the body
//                delete, touch then delete, release once (new priority, some
//                with a delay of 1 s) or bury; the buried jobs are kicked
//                (kick and kick-job) and finished
//   6. account   every job put was deleted exactly once, nothing is left in
//                any tube, the tubes are gone once nobody refers to them, and
//                the server's command counters match the commands sent
//
// Usage: node clients.mjs <host> <port>
// Exit status 0 only if every check passed; each failure prints one line
// starting with FAIL. The clients resolve from node_modules in the current
// directory or through NODE_PATH. The server must be this script's alone:
// the global stats counters are compared before and after.

import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

process.noDeprecation = true;  // fivebeans 1.5.0 calls new Buffer()

const host = process.argv[2];
const port = Number(process.argv[3]);
if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('usage: node clients.mjs <host> <port>');
    process.exit(2);
}

const require = createRequire(path.join(process.cwd(), 'clients.cjs'));
let Jackd, FiveBeans;
try {
    Jackd = require('jackd');
    FiveBeans = require('fivebeans').client;
} catch (err) {
    console.error(`clients.mjs: cannot load jackd and fivebeans (${err.message.split('\n')[0]}).\n` +
        'Run `npm ci` in a copy of tests/server/node and start node in that folder, ' +
        'or point NODE_PATH at its node_modules.');
    process.exit(2);
}

const HARD_LIMIT_MS = 60_000;  // the script normally ends within 10 s
const EARLY_MS = 25;           // slack for a delay measured from the client side
const tag = `conq-node-${process.pid}`;
const T = {
    api: `${tag}-api`,
    order1: `${tag}-order1`,
    order2: `${tag}-order2`,
    work: [`${tag}-email`, `${tag}-image`, `${tag}-report`],
    missing: `${tag}-missing`,
};

// ------------------------------------------------------------------ checks

let phase = 'connect';
let checks = 0;
const failures = [];

function check(ok, what) {
    checks++;
    if (!ok) {
        failures.push(`[${phase}] ${what}`);
        console.log(`FAIL [${phase}] ${what}`);
    }
    return ok;
}

function show(value) {
    if (Buffer.isBuffer(value)) {
        const text = value.toString('utf8');
        return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text) +
            ` (${value.length} bytes)`;
    }
    return JSON.stringify(value);
}

function expectEq(actual, expected, what) {
    return check(String(actual) === String(expected),
        `${what}: expected ${show(expected)}, got ${show(actual)}`);
}

function expectSet(actual, expected, what) {
    const a = Array.isArray(actual) ? [...actual].map(String).sort() : actual;
    const e = [...expected].map(String).sort();
    return check(JSON.stringify(a) === JSON.stringify(e),
        `${what}: expected ${show(e)}, got ${show(a)}`);
}

function expectBody(actual, expected, what) {
    return check(Buffer.isBuffer(actual) && actual.equals(Buffer.from(expected)),
        `${what}: expected body ${show(Buffer.from(expected))}, got ${show(actual)}`);
}

// The error reply ("NOT_FOUND", "TIMED_OUT", ...): jackd throws Error(reply
// line), or InvalidResponseError("Unexpected response: <reply line>") for a
// reply it does not expect (NOT_FOUND to stats-job, for one); fivebeans passes
// the first word of the reply as `err`.
function replyOf(err) {
    return String(err?.message ?? err).replace(/^Unexpected response: /, '');
}

// An unexpected error reply, with the command that got it.
function describe(err) {
    return err?.command ? `${replyOf(err)} in reply to \`${err.command}\`` : String(err?.stack ?? err);
}

async function expectReply(promise, code, what) {
    try {
        const value = await promise;
        check(false, `${what}: expected ${code}, got a success reply ${show(value)}`);
    } catch (err) {
        const reply = replyOf(err);
        check(reply.split(' ')[0] === code, `${what}: expected ${code}, got ${err?.command ? show(reply) : describe(err)}`);
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(condition, what, limitMs) {
    const end = performance.now() + limitMs;
    while (!(await condition())) {
        if (performance.now() > end) {
            return check(false, `${typeof what === 'function' ? what() : what}: not reached within ${limitMs} ms`);
        }
        await sleep(20);
    }
    return true;
}

// Commands sent, by name: the server's cmd-<name> counters must grow by as
// much (beanstalkd counts every command, those answered with an error too).
const sent = new Map();
const count = (command) => sent.set(command, (sent.get(command) ?? 0) + 1);

// jackd returns YAML replies as text; fivebeans parses them with js-yaml.
// beanstalkd's YAML is flat: "key: value" lines or "- item" lines.
function parseYaml(text) {
    const lines = text.split('\n').filter((line) => line !== '' && line !== '---');
    const scalar = (v) => (/^-?\d+$/.test(v) ? Number(v) : v.replace(/^"(.*)"$/, '$1'));
    if (lines.length > 0 && lines.every((line) => line.startsWith('- '))) {
        return lines.map((line) => String(scalar(line.slice(2))));
    }
    const map = {};
    for (const line of lines) {
        const colon = line.indexOf(': ');
        if (colon < 0) {
            check(false, `YAML line without "key: value": ${show(line)}`);
            continue;
        }
        map[line.slice(0, colon)] = scalar(line.slice(colon + 2));
    }
    return map;
}

// ----------------------------------------------------------------- clients

// Both adapters offer the same calls, return ids as strings, jobs as
// { id, payload: Buffer }, YAML replies parsed, and throw Error(reply) on an
// error reply.

class JackdConnection {
    constructor(name) {
        this.name = name;
        this.lib = 'jackd';
        this.client = new Jackd();
        this.tail = Promise.resolve();
    }

    async connect() {
        await this.client.connect({ host, port });
        this.client.socket.on('error', (err) => check(false, `${this.name}: socket error ${err.message}`));
        return this;
    }

    // jackd takes a second reply that arrives in the same read as a job body
    // for part of that body, so it sends one command at a time.
    run(command, call, ...args) {
        count(command);
        const reply = this.tail.then(call).catch((err) => {
            err.command = `${[command, ...args].join(' ')} (${this.name})`;
            throw err;
        });
        this.tail = reply.catch(() => {});
        return reply;
    }

    static job(r) { return { id: String(r.id), payload: Buffer.from(r.payload) }; }

    use(tube) { return this.run('use', () => this.client.use(tube), tube); }
    watch(tube) { return this.run('watch', async () => Number(await this.client.watch(tube)), tube); }
    ignore(tube) { return this.run('ignore', async () => Number(await this.client.ignore(tube)), tube); }
    listTubeUsed() { return this.run('list-tube-used', () => this.client.listTubeUsed()); }
    // jackd stringifies any object body (a Buffer included) as JSON: strings only.
    put(body, { pri, delay, ttr }) {
        return this.run('put', async () => String(await this.client.put(String(body), { priority: pri, delay, ttr })),
            pri, delay, ttr, Buffer.byteLength(String(body)));
    }
    reserve() { return this.run('reserve', async () => JackdConnection.job(await this.client.reserve())); }
    reserveWithTimeout(seconds) {
        return this.run('reserve-with-timeout',
            async () => JackdConnection.job(await this.client.reserveWithTimeout(seconds)), seconds);
    }
    reserveJob(id) { return this.run('reserve-job', async () => JackdConnection.job(await this.client.reserveJob(id)), id); }
    delete(id) { return this.run('delete', () => this.client.delete(id), id); }
    release(id, pri, delay) { return this.run('release', () => this.client.release(id, { priority: pri, delay }), id, pri, delay); }
    bury(id, pri) { return this.run('bury', () => this.client.bury(id, pri), id, pri); }
    touch(id) { return this.run('touch', () => this.client.touch(id), id); }
    kick(bound) { return this.run('kick', async () => Number(await this.client.kick(bound)), bound); }
    kickJob(id) { return this.run('kick-job', () => this.client.kickJob(id), id); }
    peek(id) { return this.run('peek', async () => JackdConnection.job(await this.client.peek(id)), id); }
    peekReady() { return this.run('peek-ready', async () => JackdConnection.job(await this.client.peekReady())); }
    peekDelayed() { return this.run('peek-delayed', async () => JackdConnection.job(await this.client.peekDelayed())); }
    peekBuried() { return this.run('peek-buried', async () => JackdConnection.job(await this.client.peekBuried())); }
    statsJob(id) { return this.run('stats-job', async () => parseYaml(await this.client.statsJob(id)), id); }
    statsTube(tube) { return this.run('stats-tube', async () => parseYaml(await this.client.statsTube(tube)), tube); }
    stats() { return this.run('stats', async () => parseYaml(await this.client.stats())); }
    listTubes() { return this.run('list-tubes', async () => parseYaml(await this.client.listTubes())); }
    listTubesWatched() { return this.run('list-tubes-watched', async () => parseYaml(await this.client.listTubesWatched())); }
    // jackd 2.2.2 sends "pause-tube <tube> <delay>" without the CRLF: the
    // line is finished by a second write, as a slow client would.
    pauseTube(tube, delay) {
        return this.run('pause-tube', async () => {
            const reply = this.client.pauseTube(tube, { delay });
            await this.client.write(Buffer.from('\r\n', 'ascii'));
            await reply;
        }, tube, delay);
    }
    close() { return this.client.quit(); }
}

class FiveBeansConnection {
    constructor(name) {
        this.name = name;
        this.lib = 'fivebeans';
        this.client = new FiveBeans(host, port);
    }

    connect() {
        return new Promise((resolve, reject) => {
            this.client.once('connect', () => {
                this.client.on('error', (err) => check(false, `${this.name}: socket error ${err.message}`));
                resolve(this);
            });
            this.client.once('error', reject);
            this.client.connect();
        });
    }

    // fivebeans pipelines: each call writes at once and its callback gets the
    // replies in order.
    run(command, method, ...args) {
        count(command);
        return new Promise((resolve, reject) => {
            this.client[method](...args, (err, ...values) => {
                if (!err) return resolve(values);
                const error = new Error(String(err));
                error.command = `${[command, ...args.filter((a) => !Buffer.isBuffer(a))].join(' ')} (${this.name})`;
                reject(error);
            });
        });
    }

    static job([id, payload]) { return { id: String(id), payload }; }

    async use(tube) { return (await this.run('use', 'use', tube))[0]; }
    async watch(tube) { return Number((await this.run('watch', 'watch', tube))[0]); }
    async ignore(tube) { return Number((await this.run('ignore', 'ignore', tube))[0]); }
    async listTubeUsed() { return (await this.run('list-tube-used', 'list_tube_used'))[0]; }
    async put(body, { pri, delay, ttr }) {
        return String((await this.run('put', 'put', pri, delay, ttr, Buffer.from(body)))[0]);
    }
    async reserve() { return FiveBeansConnection.job(await this.run('reserve', 'reserve')); }
    async reserveWithTimeout(seconds) {
        return FiveBeansConnection.job(await this.run('reserve-with-timeout', 'reserve_with_timeout', seconds));
    }
    async delete(id) { await this.run('delete', 'destroy', id); }
    async release(id, pri, delay) { await this.run('release', 'release', id, pri, delay); }
    async bury(id, pri) { await this.run('bury', 'bury', id, pri); }
    async touch(id) { await this.run('touch', 'touch', id); }
    async kick(bound) { return Number((await this.run('kick', 'kick', bound))[0]); }
    async kickJob(id) { await this.run('kick-job', 'kick_job', id); }
    async peek(id) { return FiveBeansConnection.job(await this.run('peek', 'peek', id)); }
    async peekReady() { return FiveBeansConnection.job(await this.run('peek-ready', 'peek_ready')); }
    async peekDelayed() { return FiveBeansConnection.job(await this.run('peek-delayed', 'peek_delayed')); }
    async peekBuried() { return FiveBeansConnection.job(await this.run('peek-buried', 'peek_buried')); }
    async statsJob(id) { return (await this.run('stats-job', 'stats_job', id))[0]; }
    async statsTube(tube) { return (await this.run('stats-tube', 'stats_tube', tube))[0]; }
    async stats() { return (await this.run('stats', 'stats'))[0]; }
    async listTubes() { return (await this.run('list-tubes', 'list_tubes'))[0]; }
    async listTubesWatched() { return (await this.run('list-tubes-watched', 'list_tubes_watched'))[0]; }
    async pauseTube(tube, delay) { await this.run('pause-tube', 'pause_tube', tube, delay); }
    close() { this.client.end(); }
}

const connections = [];
async function open(Kind, name) {
    const connection = await new Kind(name).connect();
    connections.push(connection);
    return connection;
}

async function closeAll(except) {
    for (const c of connections.splice(0)) {
        if (c === except) connections.push(c);
        else await c.close();
    }
}

// ------------------------------------------------------------------ phases

let J0, F0, statsBefore, sentBefore;

async function tubes() {
    phase = 'tubes';
    J0 = await open(JackdConnection, 'jackd admin');
    F0 = await open(FiveBeansConnection, 'fivebeans admin');
    statsBefore = await J0.stats();
    sentBefore = new Map(sent);
    const fiveStats = await F0.stats();
    for (const key of ['current-connections', 'cmd-put', 'total-jobs', 'current-tubes', 'uptime', 'max-job-size']) {
        check(Number.isInteger(statsBefore[key]), `jackd stats: ${key} is ${show(statsBefore[key])}, not an integer`);
        check(Number.isInteger(fiveStats[key]), `fivebeans stats: ${key} is ${show(fiveStats[key])}, not an integer`);
    }
    check(statsBefore['current-connections'] >= 2,
        `stats current-connections is ${statsBefore['current-connections']} with two connections open`);
    expectEq(fiveStats.version, statsBefore.version, 'stats version as read by fivebeans and by jackd');

    expectEq(await J0.listTubeUsed(), 'default', 'jackd list-tube-used on a new connection');
    expectEq(await F0.listTubeUsed(), 'default', 'fivebeans list-tube-used on a new connection');
    expectEq(await J0.use(T.api), T.api, 'jackd use');
    expectEq(await J0.listTubeUsed(), T.api, 'jackd list-tube-used after use');
    expectEq(await F0.use(T.api), T.api, 'fivebeans use');
    expectEq(await F0.watch(T.api), 2, 'fivebeans watch: tubes watched');
    expectEq(await F0.watch(T.api), 2, 'fivebeans watch of a tube already watched: tubes watched');
    expectSet(await F0.listTubesWatched(), ['default', T.api], 'fivebeans list-tubes-watched');
    expectEq(await F0.ignore('default'), 1, 'fivebeans ignore default: tubes watched');
    expectEq(await F0.ignore(T.missing), 1, 'fivebeans ignore of a tube not watched: tubes watched');
    await expectReply(F0.ignore(T.api), 'NOT_IGNORED', 'fivebeans ignore of the last tube watched');
    expectSet(await F0.listTubesWatched(), [T.api], 'fivebeans list-tubes-watched after ignore');
    expectSet(await J0.listTubesWatched(), ['default'], 'jackd list-tubes-watched on a new connection');

    for (const [who, c] of [['jackd', J0], ['fivebeans', F0]]) {
        const list = await c.listTubes();
        check(Array.isArray(list) && list.includes('default') && list.includes(T.api),
            `${who} list-tubes: expected default and ${T.api} among ${show(list)}`);
        check(Array.isArray(list) && !list.includes(T.missing),
            `${who} list-tubes: ${T.missing} was only ignored, yet is listed`);
    }
}

async function commands() {
    phase = 'commands';
    const Jw = await open(JackdConnection, 'jackd api worker');
    expectEq(await Jw.watch(T.api), 2, 'jackd watch: tubes watched');
    expectEq(await Jw.ignore('default'), 1, 'jackd ignore default: tubes watched');
    await expectReply(Jw.ignore(T.api), 'NOT_IGNORED', 'jackd ignore of the last tube watched');
    await expectReply(F0.reserveWithTimeout(0), 'TIMED_OUT', 'fivebeans reserve-with-timeout 0 on an empty tube');
    await expectReply(Jw.reserveWithTimeout(0), 'TIMED_OUT', 'jackd reserve-with-timeout 0 on an empty tube');
    await expectReply(J0.peekReady(), 'NOT_FOUND', 'peek-ready on an empty tube');

    // A job delayed 100 s, kicked into the ready queue.
    const body1 = 'delayed job: kick-job makes it ready';
    const id1 = await J0.put(body1, { pri: 100, delay: 100, ttr: 3 });
    const delayed = await F0.peekDelayed();
    expectEq(delayed.id, id1, 'fivebeans peek-delayed: id');
    expectBody(delayed.payload, body1, 'fivebeans peek-delayed');
    await expectReply(J0.peekReady(), 'NOT_FOUND', 'peek-ready with only a delayed job');
    await expectReply(J0.peekBuried(), 'NOT_FOUND', 'peek-buried with only a delayed job');
    let st = await F0.statsJob(id1);
    expectEq(st.state, 'delayed', 'stats-job state after put with a delay');
    expectEq(st.tube, T.api, 'stats-job tube');
    expectEq(st.pri, 100, 'stats-job pri');
    expectEq(st.delay, 100, 'stats-job delay');
    expectEq(st.ttr, 3, 'stats-job ttr');
    await J0.kickJob(id1);
    st = await J0.statsJob(id1);
    expectEq(st.state, 'ready', 'stats-job state after kick-job of a delayed job');
    expectEq(st.kicks, 1, 'stats-job kicks after kick-job');
    await expectReply(J0.kickJob(id1), 'NOT_FOUND', 'kick-job of a ready job');
    const peeked = await F0.peek(id1);
    expectEq(peeked.id, id1, 'fivebeans peek: id');
    expectBody(peeked.payload, body1, 'fivebeans peek');

    // reserve-job from a connection that does not watch the tube.
    const J2 = await open(JackdConnection, 'jackd default-tube worker');
    const byId = await J2.reserveJob(id1);
    expectEq(byId.id, id1, 'jackd reserve-job: id');
    expectBody(byId.payload, body1, 'jackd reserve-job');
    await expectReply(J2.reserveJob(String(BigInt(id1) + 1000000n)), 'NOT_FOUND', 'reserve-job of an id never used');
    await expectReply(F0.delete(id1), 'NOT_FOUND', 'delete of a job another connection reserved');
    await expectReply(F0.touch(id1), 'NOT_FOUND', 'touch of a job another connection reserved');
    await expectReply(F0.release(id1, 1, 0), 'NOT_FOUND', 'release of a job another connection reserved');
    await expectReply(F0.bury(id1, 1), 'NOT_FOUND', 'bury of a job another connection reserved');
    await expectReply(J2.reserveJob(id1), 'NOT_FOUND', 'reserve-job of a job already reserved');

    // Time to run: time-left counts down from ttr 3, touch starts it again.
    await Promise.all([sleep(1100), (async () => {
        const start = performance.now();
        await expectReply(Jw.reserveWithTimeout(1), 'TIMED_OUT', 'jackd reserve-with-timeout 1 on an empty tube');
        const waited = performance.now() - start;
        check(waited >= 1000 - EARLY_MS, `reserve-with-timeout 1 answered TIMED_OUT after ${waited.toFixed(0)} ms`);
    })()]);
    const before = (await J2.statsJob(id1))['time-left'];
    await J2.touch(id1);
    const after = (await J2.statsJob(id1))['time-left'];
    check(before <= 2, `stats-job time-left ${before} s, 1.1 s into a ttr of 3 s`);
    check(after > before && after <= 3, `stats-job time-left ${after} s after touch (${before} s before)`);

    // Bury, peek-buried, kick-job back.
    await J2.bury(id1, 42);
    const buried = await F0.peekBuried();
    expectEq(buried.id, id1, 'fivebeans peek-buried: id');
    st = await F0.statsJob(id1);
    expectEq(st.state, 'buried', 'stats-job state after bury');
    expectEq(st.pri, 42, 'stats-job pri after bury with a new priority');
    expectEq(st.buries, 1, 'stats-job buries');
    await F0.kickJob(id1);
    expectEq((await F0.statsJob(id1)).state, 'ready', 'stats-job state after kick-job of a buried job');
    expectEq((await J0.peekReady()).id, id1, 'jackd peek-ready after kick-job');

    // kick with a bound kicks at most that many.
    await J2.reserveJob(id1);
    await J2.bury(id1, 42);
    const id2 = await J0.put('second job for kick', { pri: 5, delay: 0, ttr: 60 });
    await J2.reserveJob(id2);
    await J2.bury(id2, 43);
    expectEq((await J0.statsTube(T.api))['current-jobs-buried'], 2, 'stats-tube current-jobs-buried');
    expectEq(await F0.kick(1), 1, 'fivebeans kick 1 with two buried jobs');
    expectEq(await F0.kick(10), 1, 'fivebeans kick 10 with one buried job left');
    expectEq(await J0.kick(10), 0, 'jackd kick 10 with nothing buried or delayed');

    // Ready jobs can be deleted from any connection.
    await F0.delete(id1);
    await J0.delete(id2);
    await expectReply(J0.delete(id1), 'NOT_FOUND', 'delete of a deleted job');
    await expectReply(F0.peek(id1), 'NOT_FOUND', 'peek of a deleted job');
    await expectReply(J0.statsJob(id2), 'NOT_FOUND', 'stats-job of a deleted job');
    await expectReply(F0.kickJob(id2), 'NOT_FOUND', 'kick-job of a deleted job');
    st = await F0.statsTube(T.api);
    expectEq(st.name, T.api, 'stats-tube name');
    for (const key of ['current-jobs-ready', 'current-jobs-reserved', 'current-jobs-delayed', 'current-jobs-buried']) {
        expectEq(st[key], 0, `stats-tube ${key} once both jobs are deleted`);
    }
    expectEq(st['total-jobs'], 2, 'stats-tube total-jobs');
    expectEq(st['current-using'], 2, 'stats-tube current-using');
    expectEq(st['current-watching'], 2, 'stats-tube current-watching');
    await expectReply(F0.statsTube(T.missing), 'NOT_FOUND', 'stats-tube of a tube that does not exist');
    return Jw;
}

async function pause(Jw) {
    phase = 'pause';
    const id = await J0.put('job in a paused tube', { pri: 0, delay: 0, ttr: 60 });
    const start = performance.now();
    await F0.pauseTube(T.api, 1);
    const st = await J0.statsTube(T.api);
    expectEq(st.pause, 1, 'stats-tube pause after pause-tube 1');
    expectEq(st['cmd-pause-tube'], 1, 'stats-tube cmd-pause-tube');
    check(st['pause-time-left'] <= 1, `stats-tube pause-time-left is ${st['pause-time-left']} s for a pause of 1 s`);
    await expectReply(Jw.reserveWithTimeout(0), 'TIMED_OUT', 'reserve-with-timeout 0 on a paused tube with a ready job');
    const job = await Jw.reserveWithTimeout(3);
    const waited = performance.now() - start;
    expectEq(job.id, id, 'the job of a paused tube, reserved once the pause ends');
    check(waited >= 1000 - EARLY_MS, `a tube paused for 1 s gave out a job after ${waited.toFixed(0)} ms`);
    await Jw.delete(id);
    await J0.pauseTube(T.api, 0);
    const again = await F0.statsTube(T.api);
    expectEq(again.pause, 0, 'stats-tube pause after jackd pause-tube 0');
    expectEq(again['cmd-pause-tube'], 2, 'stats-tube cmd-pause-tube after a second pause-tube');
    await expectReply(F0.pauseTube(T.missing, 1), 'NOT_FOUND', 'fivebeans pause-tube of a tube that does not exist');
    await expectReply(J0.pauseTube(T.missing, 1), 'NOT_FOUND', 'jackd pause-tube of a tube that does not exist');
}

// Expected reserve order: priority, then put order.
function byPriority(jobs) {
    return jobs.map((job, index) => ({ ...job, index }))
        .sort((a, b) => (a.pri - b.pri) || (a.index - b.index));
}

async function order() {
    phase = 'order';
    // fivebeans pipelines the puts; one jackd worker drains.
    const pris1 = [500, 0, 2 ** 32 - 1, 500, 10, 1024, 0, 7, 500, 2 ** 31, 10, 1023];
    const Fp = await open(FiveBeansConnection, 'fivebeans order producer');
    const used = Fp.use(T.order1);
    const jobs1 = pris1.map((pri, i) => ({ pri, body: `order1 #${i} pri ${pri}` }));
    const ids1 = await Promise.all(jobs1.map((job) => Fp.put(job.body, { pri: job.pri, delay: 0, ttr: 60 })));
    expectEq(await used, T.order1, 'fivebeans use, pipelined before the puts');
    jobs1.forEach((job, i) => { job.id = ids1[i]; });
    check(new Set(ids1).size === ids1.length, `pipelined puts returned duplicate ids ${show(ids1)}`);
    const st = await J0.statsTube(T.order1);
    expectEq(st['current-jobs-ready'], pris1.length, 'stats-tube current-jobs-ready after the puts');
    expectEq(st['current-jobs-urgent'], pris1.filter((p) => p < 1024).length,
        'stats-tube current-jobs-urgent (priority < 1024)');
    const Jo = await open(JackdConnection, 'jackd order worker');
    await Jo.watch(T.order1);
    await Jo.ignore('default');
    await J0.use(T.order1);
    for (const [rank, want] of byPriority(jobs1).entries()) {
        const peeked = await J0.peekReady();
        expectEq(peeked.id, want.id, `peek-ready #${rank} (priority ${want.pri} expected): id`);
        const job = await Jo.reserveWithTimeout(0);
        if (!expectEq(job.id, want.id, `reserve #${rank} from a prefilled tube (priority ${want.pri} expected): id`)) {
            const got = jobs1.find((j) => j.id === job.id);
            console.log(`      got priority ${got?.pri} (${got ? got.body : 'a job not put here'})`);
        }
        expectBody(job.payload, want.body, `reserve #${rank} body`);
        await Jo.delete(job.id);
    }
    await expectReply(Jo.reserveWithTimeout(0), 'TIMED_OUT', 'reserve-with-timeout 0 on a drained tube');

    // jackd puts one at a time, including an urgent job delayed 1 s; one
    // fivebeans worker pipelines all its reserves.
    const pris2 = [3, 2 ** 32 - 1, 0, 3, 1024, 1023, 0, 99];
    await J0.use(T.order2);
    const jobs2 = [];
    for (const [i, pri] of pris2.entries()) {
        const job = { pri, body: `order2 #${i} pri ${pri}` };
        job.id = await J0.put(job.body, { pri, delay: 0, ttr: 60 });
        jobs2.push(job);
    }
    const delayedAt = performance.now();
    const delayedId = await J0.put('order2 urgent, delayed 1 s', { pri: 0, delay: 1, ttr: 60 });
    const Fo = await open(FiveBeansConnection, 'fivebeans order worker');
    await Fo.watch(T.order2);
    await Fo.ignore('default');
    const reserves = jobs2.map(() => Fo.reserveWithTimeout(0));
    const extra = expectReply(Fo.reserveWithTimeout(0), 'TIMED_OUT',
        'pipelined reserve-with-timeout 0 once only a delayed job is left');
    const got = await Promise.all(reserves);
    for (const [rank, want] of byPriority(jobs2).entries()) {
        expectEq(got[rank].id, want.id, `pipelined reserve #${rank} (priority ${want.pri} expected): id`);
        expectBody(got[rank].payload, want.body, `pipelined reserve #${rank} body`);
    }
    await extra;
    await Promise.all(got.map((job) => Fo.delete(job.id)));
    const late = await Fo.reserveWithTimeout(3);
    const waited = performance.now() - delayedAt;
    expectEq(late.id, delayedId, 'the delayed job, once its delay ended');
    check(waited >= 1000 - EARLY_MS, `a job delayed 1 s was reserved after ${waited.toFixed(0)} ms`);
    await Fo.delete(late.id);
    for (const tube of [T.order1, T.order2]) {
        const s = await J0.statsTube(tube);
        expectEq(s['current-jobs-ready'] + s['current-jobs-delayed'] + s['current-jobs-reserved'] +
            s['current-jobs-buried'], 0, `stats-tube ${tube}: jobs left`);
    }
    await J0.use(T.api);
}

// --------------------------------------------------------------- workload

const N = 90;
const PRIS = [0, 1, 10, 100, 512, 1023, 1024, 5000, 65536, 2 ** 31, 2 ** 32 - 1];

// Job n: its tube, priority, delay and what the worker does with it.
function makeJob(n) {
    const kind = n % 10;
    const meta = {
        n,
        tube: T.work[n % 3],
        action: kind < 5 ? 'delete' : kind === 5 ? 'touch' : kind < 8 ? 'release' : 'bury',
        releasePri: PRIS[(n * 3 + 1) % PRIS.length],
        releaseDelay: n % 4 < 2 ? 1 : 0,
        buryPri: 1000 + n,
    };
    const pad = n === 42 ? 50_000 : (n * 37) % 400;
    let body = `${JSON.stringify(meta)}\r\n${'é'.repeat(n % 7)}${'x'.repeat(pad)}\r\nend of job ${n}`;
    if (n % 9 === 0) body += '\r\n';
    return {
        ...meta,
        body: Buffer.from(body),
        pri: PRIS[(n * 7) % PRIS.length],
        delay: n % 6 === 0 ? 1 : 0,
        putDelay: n % 6 === 0 ? 1 : 0,  // delay stays what the last put or release asked
        ttr: 30 + (n % 3),
        id: undefined,        // from INSERTED
        seenIds: new Set(),   // from RESERVED
        state: 'ready',
        notBefore: undefined, // performance.now() before which it must not be reserved
        reserves: 0, releases: 0, buries: 0, kicks: 0,
    };
}

const work = {
    jobs: [],
    inFlight: new Map(),   // id -> worker holding it
    deletes: new Map(),    // id -> DELETED replies
    buried: new Map(),     // tube -> ids buried
    deleted: 0, released: 0, buriedCount: 0, touched: 0,
    handled: { jackd: 0, fivebeans: 0 },
    stop: false,
    workerDied: false,
};

// Waits for the workers, failing as soon as one stopped or nothing moved for
// 3 s (the longest legitimate wait is a delay of 1 s).
async function waitForWorkers(condition, what, limitMs) {
    const progress = () => work.deleted + work.released + work.buriedCount;
    let last = progress();
    let lastChange = performance.now();
    const end = lastChange + limitMs;
    while (!condition()) {
        const now = performance.now();
        if (progress() !== last) {
            last = progress();
            lastChange = now;
        }
        const why = work.workerDied ? 'a worker stopped' : now - lastChange > 3000 ? 'no progress for 3 s'
            : now > end ? `not done within ${limitMs} ms` : null;
        if (why) {
            return check(false, `${what}: ${why}, at ${work.deleted} deleted, ${work.buriedCount} buried, ` +
                `${work.released} released of ${N} jobs`);
        }
        await sleep(20);
    }
    return true;
}

async function handle(worker, { id, payload }) {
    const text = payload.toString('utf8');
    let meta;
    try {
        meta = JSON.parse(text.slice(0, text.indexOf('\r\n')));
    } catch {
        check(false, `${worker.name}: reserved job ${id} that this script did not put: ${show(payload)}`);
        return;
    }
    const j = work.jobs[meta.n];
    const now = performance.now();
    if (!j) {
        check(false, `${worker.name}: reserved job ${id} with unknown n=${meta.n}`);
        return;
    }
    expectBody(payload, j.body, `${worker.name}: job ${id} (n=${j.n})`);
    if (j.id !== undefined) expectEq(id, j.id, `job n=${j.n}: id reserved vs id put`);
    j.seenIds.add(id);
    const holder = work.inFlight.get(id);
    check(holder === undefined, `job ${id} reserved by ${worker.name} while ${holder} holds it`);
    work.inFlight.set(id, worker.name);
    check(j.state === 'ready', `job ${id} (n=${j.n}) reserved by ${worker.name} while ${j.state}`);
    if (j.notBefore !== undefined) {
        check(now >= j.notBefore - EARLY_MS,
            `job ${id} (n=${j.n}) reserved ${(j.notBefore - now).toFixed(0)} ms before its delay ended`);
    }
    j.reserves++;
    work.handled[worker.lib]++;

    const st = await worker.statsJob(id);
    const where = `stats-job ${id} (n=${j.n}, reserve #${j.reserves}) by ${worker.name}`;
    expectEq(st.state, 'reserved', `${where}: state`);
    expectEq(st.tube, j.tube, `${where}: tube`);
    expectEq(st.pri, j.pri, `${where}: pri`);
    expectEq(st.delay, j.delay, `${where}: delay`);
    expectEq(st.ttr, j.ttr, `${where}: ttr`);
    expectEq(st.reserves, j.reserves, `${where}: reserves`);
    expectEq(st.releases, j.releases, `${where}: releases`);
    expectEq(st.buries, j.buries, `${where}: buries`);
    expectEq(st.kicks, j.kicks, `${where}: kicks`);

    if (meta.action === 'release' && j.releases === 0) {
        j.releases++;
        j.pri = meta.releasePri;
        j.delay = meta.releaseDelay;
        j.notBefore = meta.releaseDelay ? performance.now() + 1000 * meta.releaseDelay : undefined;
        work.inFlight.delete(id);
        await worker.release(id, meta.releasePri, meta.releaseDelay);
        work.released++;
        return;
    }
    if (meta.action === 'bury' && j.buries === 0) {
        j.buries++;
        j.pri = meta.buryPri;
        j.state = 'buried';
        work.inFlight.delete(id);
        await worker.bury(id, meta.buryPri);
        work.buried.get(j.tube).push(id);
        work.buriedCount++;
        return;
    }
    if (meta.action === 'touch') {
        await worker.touch(id);
        const left = (await worker.statsJob(id))['time-left'];
        check(left >= j.ttr - 2 && left <= j.ttr, `stats-job ${id} time-left ${left} s after touch, ttr ${j.ttr} s`);
        work.touched++;
    }
    j.state = 'deleted';
    work.inFlight.delete(id);
    await worker.delete(id);
    work.deletes.set(id, (work.deletes.get(id) ?? 0) + 1);
    work.deleted++;
}

// jackd workers poll with reserve-with-timeout 1 and stop on a flag;
// fivebeans workers block in reserve and stop on a job in their own tube.
async function runWorker(worker, tubes, control) {
    try {
        for (const tube of tubes) await worker.watch(tube);
        if (control) await worker.watch(control);
        expectEq(await worker.ignore('default'), tubes.length + (control ? 1 : 0),
            `${worker.name}: tubes watched after ignore default`);
        for (;;) {
            let job;
            if (control) {
                job = await worker.reserve();
                if (job.payload.toString() === 'stop') {
                    await worker.delete(job.id);
                    work.controlDeleted.push(job.id);
                    return;
                }
            } else {
                try {
                    job = await worker.reserveWithTimeout(1);
                } catch (err) {
                    if (replyOf(err) !== 'TIMED_OUT') throw err;
                    if (work.stop) return;
                    continue;
                }
            }
            await handle(worker, job);
        }
    } catch (err) {
        work.workerDied = true;
        check(false, `${worker.name} stopped: ${describe(err)}`);
    }
}

async function workload() {
    phase = 'workload';
    work.jobs = Array.from({ length: N }, (_, n) => makeJob(n));
    work.controlDeleted = [];
    for (const tube of T.work) work.buried.set(tube, []);

    const plans = [
        [JackdConnection, 'jackd worker A', T.work, null],
        [JackdConnection, 'jackd worker B', [T.work[0], T.work[1]], null],
        [FiveBeansConnection, 'fivebeans worker C', [T.work[1], T.work[2]], `${tag}-stop-c`],
        [FiveBeansConnection, 'fivebeans worker D', [T.work[2], T.work[0]], `${tag}-stop-d`],
    ];
    const workers = [];
    for (const [Kind, name, tubes, control] of plans) {
        const worker = await open(Kind, name);
        workers.push({ worker, control, done: runWorker(worker, tubes, control) });
    }
    // Let every worker get to its reserve, so the puts wake waiting workers.
    let waiting = 'no reply yet';
    await waitUntil(async () => {
        try {
            waiting = (await J0.statsTube(T.work[0]))['current-waiting'];
        } catch (err) {
            waiting = describe(err);
        }
        return waiting >= 3;
    }, () => `stats-tube ${T.work[0]}: current-waiting 3 (last: ${waiting})`, 5000);

    const producer = await open(FiveBeansConnection, 'fivebeans producer');
    const start = performance.now();
    const replies = [];
    for (const j of work.jobs) {
        replies.push(producer.use(j.tube).then((tube) => expectEq(tube, j.tube, 'producer use')));
        j.notBefore = j.delay ? performance.now() + 1000 * j.delay : undefined;
        replies.push(producer.put(j.body, j).then((id) => { j.id = id; }));
    }
    await Promise.all(replies);
    const ids = work.jobs.map((j) => j.id);
    check(new Set(ids).size === N, `${N} pipelined puts returned ${new Set(ids).size} distinct ids`);
    for (const j of work.jobs) {
        for (const seen of j.seenIds) expectEq(seen, j.id, `job n=${j.n}: id reserved vs id put`);
    }
    if (performance.now() - start < 700) {
        for (const tube of T.work) {
            const st = await J0.statsTube(tube);
            // Only the delays of the puts: a worker may already have
            // released a job with a delay, and changed its `delay`, before
            // the server saw the release.
            const delayed = work.jobs.filter((j) => j.tube === tube && j.putDelay > 0).length;
            check(st['current-jobs-delayed'] >= delayed,
                `stats-tube ${tube}: current-jobs-delayed ${st['current-jobs-delayed']} right after putting ${delayed} delayed jobs`);
            expectEq(st['total-jobs'], N / 3, `stats-tube ${tube}: total-jobs`);
        }
    }

    const burying = work.jobs.filter((j) => j.action === 'bury');
    await waitForWorkers(() => work.deleted === N - burying.length && work.buriedCount === burying.length,
        'every job deleted or buried', 15_000);

    phase = 'kick';
    for (const tube of T.work) {
        const st = await F0.statsTube(tube);
        const want = burying.filter((j) => j.tube === tube).length;
        expectEq(st['current-jobs-buried'], want, `stats-tube ${tube}: current-jobs-buried`);
        for (const key of ['current-jobs-ready', 'current-jobs-reserved', 'current-jobs-delayed']) {
            expectEq(st[key], 0, `stats-tube ${tube}: ${key} with only buried jobs left`);
        }
    }
    // First tube: kick 1000 (jackd); second: kick 2 then the rest (fivebeans);
    // third: kick-job for each, both clients in turn.
    const [t0, t1, t2] = T.work;
    const markKicked = (tube) => {
        for (const j of burying.filter((b) => b.tube === tube)) { j.state = 'ready'; j.kicks++; }
    };
    await J0.use(t0);
    const peeked = await J0.peekBuried();
    check(work.buried.get(t0).includes(peeked.id), `peek-buried in ${t0} gave job ${peeked.id}, not one buried there`);
    const peekedJob = burying.find((j) => j.id === peeked.id);
    if (peekedJob) expectBody(peeked.payload, peekedJob.body, 'peek-buried body');
    markKicked(t0);
    expectEq(await J0.kick(1000), work.buried.get(t0).length, `jackd kick 1000 in ${t0}`);
    await F0.use(t1);
    markKicked(t1);
    expectEq(await F0.kick(2), 2, `fivebeans kick 2 in ${t1}`);
    expectEq(await F0.kick(1000), work.buried.get(t1).length - 2, `fivebeans kick 1000 in ${t1}`);
    const t2ids = work.buried.get(t2);
    markKicked(t2);
    for (const [i, id] of t2ids.entries()) await (i % 2 ? F0 : J0).kickJob(id);

    await waitForWorkers(() => work.deleted === N, 'every job deleted after the kicks', 10_000);
    await J0.use(T.api);
    await F0.use(T.api);

    phase = 'stop workers';
    work.stop = true;
    for (const { control } of workers) {
        if (!control) continue;
        await producer.use(control);
        await producer.put('stop', { pri: 0, delay: 0, ttr: 60 });
    }
    await Promise.all(workers.map((w) => w.done));
    check(work.handled.jackd > 0 && work.handled.fivebeans > 0,
        `reserves handled: jackd workers ${work.handled.jackd}, fivebeans workers ${work.handled.fivebeans}`);
}

async function account() {
    phase = 'account';
    let bad = 0;
    for (const j of work.jobs) {
        const times = work.deletes.get(j.id) ?? 0;
        if (!check(times === 1, `job ${j.id} (n=${j.n}, ${j.action}) deleted ${times} times`)) bad++;
        const reserves = j.action === 'release' || j.action === 'bury' ? 2 : 1;
        expectEq(j.reserves, reserves, `job ${j.id} (n=${j.n}, ${j.action}): times reserved`);
    }
    const known = new Set(work.jobs.map((j) => j.id));
    for (const id of work.deletes.keys()) check(known.has(id), `deleted job ${id}, which the producer never put`);
    expectEq(work.released, work.jobs.filter((j) => j.action === 'release').length, 'jobs released');
    expectEq(work.touched, work.jobs.filter((j) => j.action === 'touch').length, 'jobs touched');
    expectEq(work.controlDeleted.length, 2, 'stop jobs deleted');

    for (const j of work.jobs) await expectReply(J0.peek(j.id), 'NOT_FOUND', `peek of deleted job ${j.id}`);
    await expectReply(F0.statsJob(work.jobs[0].id), 'NOT_FOUND', 'stats-job of a deleted job');
    for (const tube of T.work) {
        const st = await J0.statsTube(tube);
        for (const key of ['current-jobs-urgent', 'current-jobs-ready', 'current-jobs-reserved',
            'current-jobs-delayed', 'current-jobs-buried']) {
            expectEq(st[key], 0, `stats-tube ${tube}: ${key} at the end`);
        }
        expectEq(st['total-jobs'], N / 3, `stats-tube ${tube}: total-jobs`);
        expectEq(st['cmd-delete'], N / 3, `stats-tube ${tube}: cmd-delete`);
        await F0.use(tube);
        await expectReply(F0.peekReady(), 'NOT_FOUND', `peek-ready in ${tube} at the end`);
        await expectReply(F0.peekDelayed(), 'NOT_FOUND', `peek-delayed in ${tube} at the end`);
        await expectReply(F0.peekBuried(), 'NOT_FOUND', `peek-buried in ${tube} at the end`);
    }

    // Once nobody refers to them, the empty tubes go away.
    await closeAll(J0);
    await J0.use('default');
    await waitUntil(async () => (await J0.stats())['current-connections'] === 1,
        'stats current-connections back to 1 once the other connections closed', 3000);
    const ours = (list) => list.filter((t) => t.startsWith(tag));
    await waitUntil(async () => ours(await J0.listTubes()).length === 0,
        'list-tubes without the tubes of this run once nobody refers to them', 3000);
    const left = ours(await J0.listTubes());
    check(left.length === 0, `tubes still listed: ${show(left)}`);

    // The server counted the commands sent: cmd-<name> for every name it has.
    const statsAfter = await J0.stats();
    for (const [command, total] of sent) {
        const key = `cmd-${command}`;
        if (!(key in statsAfter)) continue;
        const delta = statsAfter[key] - statsBefore[key];
        expectEq(delta, total - (sentBefore.get(command) ?? 0), `stats ${key} grew by`);
    }
    const puts = sent.get('put') - (sentBefore.get('put') ?? 0);
    expectEq(statsAfter['total-jobs'] - statsBefore['total-jobs'], puts, 'stats total-jobs grew by');
    expectEq(statsAfter['job-timeouts'] - statsBefore['job-timeouts'], 0, 'stats job-timeouts grew by');
    for (const key of ['current-jobs-urgent', 'current-jobs-ready', 'current-jobs-reserved',
        'current-jobs-delayed', 'current-jobs-buried', 'current-waiting']) {
        expectEq(statsAfter[key], 0, `stats ${key} at the end`);
    }
    return bad;
}

// ------------------------------------------------------------------- main

const watchdog = setTimeout(() => {
    console.log(`FAIL [${phase}] not finished within ${HARD_LIMIT_MS / 1000} s ` +
        `(workload: ${work.deleted} deleted, ${work.buriedCount} buried, ${work.released} released of ${N})`);
    process.exit(1);
}, HARD_LIMIT_MS);

const began = performance.now();
try {
    await tubes();
    const Jw = await commands();
    await pause(Jw);
    await order();
    await workload();
    await account();
} catch (err) {
    check(false, `stopped: ${describe(err)}`);
}
clearTimeout(watchdog);
await closeAll();
const seconds = ((performance.now() - began) / 1000).toFixed(1);
if (failures.length === 0) {
    console.log(`clients.mjs: all ${checks} checks passed in ${seconds} s against version ${statsBefore.version} ` +
        `(${N} jobs, ${work.handled.jackd} reserves by jackd workers, ${work.handled.fivebeans} by fivebeans workers)`);
    process.exit(0);
}
console.log(`clients.mjs: ${failures.length} of ${checks} checks failed in ${seconds} s`);
process.exit(1);
