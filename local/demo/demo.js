// The demo page's script: plain JavaScript over the typed client (served compiled as voice-client.js).
// It keeps the pasted session token in memory only (no storage, no cookies) and never sees a Twilio token.
import { VoiceApiError, createVoiceClient, isCallOver } from './voice-client.js';

const $ = (id) => document.getElementById(id);
const apiUrl = document.querySelector('meta[name="voice-api-url"]').content;

let accessToken = '';
let currentCall = null;
/** True while an action runs with the buttons disabled: a poll then leaves the buttons alone. */
let busy = false;
/** The pending poll of the current call, and a counter that makes answers to stopped polls count for nothing. */
let pollTimer = null;
let pollGeneration = 0;

/** How often the page reads the current call while it is live (Twilio reports progress every few seconds at most). */
const POLL_MS = 1500;
/** What an ended call's status means, for the user. */
const ENDED_BECAUSE = {
  completed: 'the other side hung up',
  busy: 'the line was busy',
  'no-answer': 'no one answered',
  failed: 'the call could not be connected',
  canceled: 'the call was canceled',
};

const voice = createVoiceClient({ baseUrl: apiUrl, getAccessToken: () => accessToken });

/** Reads the `sub` and `exp` claims for display; the API, not this page, decides whether the token is valid. */
function claimsOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

function log(text) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('log').append(item);
}

function showStatus(text) {
  $('error').hidden = true;
  $('error').textContent = '';
  $('status').textContent = text;
}

/** Explains an error as a user should read it, and records code, status and Retry-After for tests. */
function showError(what, err) {
  const box = $('error');
  let text;
  if (err instanceof VoiceApiError) {
    const wait = `${err.retryAfter ?? 'a few'} seconds`;
    const advice = {
      unauthenticated: 'Your session is missing, expired or invalid: sign in again.',
      // On a call, a 429 is the concurrent-call cap (Retry-After: 5) or the daily call quota (hours).
      rate_limited:
        what === 'Calling'
          ? `You already have the most calls allowed at once (or today's calls are used up). Hang up a call, or try again in ${wait}.`
          : `Too many requests. Try again in ${wait}.`,
      network_error: 'The voice service could not be reached, or this page’s origin is not allowed to call it.',
      no_voice_session: 'Open a voice session first.',
    }[err.code];
    text = `${what} failed: ${advice ?? err.message} (${err.code}${err.status ? `, HTTP ${err.status}` : ''}${err.retryAfter !== undefined ? `, Retry-After: ${err.retryAfter}` : ''})`;
    box.dataset.code = err.code;
    box.dataset.status = String(err.status);
    if (err.retryAfter !== undefined) box.dataset.retryAfter = String(err.retryAfter);
    else delete box.dataset.retryAfter;
    if (err.code === 'unauthenticated') forget();
  } else {
    text = `${what} failed unexpectedly.`;
    box.dataset.code = 'unknown';
  }
  $('status').textContent = '';
  box.textContent = text;
  box.hidden = false;
  log(text);
}

function showCall(sid, status, reason) {
  const state = $('call-state');
  state.textContent = `Call ${sid}: ${status}${reason ? ` — ${reason}` : ''}.`;
  state.dataset.status = status;
}

function stopPolling() {
  pollGeneration++;
  clearTimeout(pollTimer);
  pollTimer = null;
}

/**
 * Reads the current call every POLL_MS and shows its status, until it is over: the far end hanging up, a busy
 * line or no answer end it without any action here, and the Hang up button goes away.
 */
function startPolling(sid) {
  stopPolling();
  const generation = pollGeneration;
  const tick = async () => {
    let call;
    try {
      call = await voice.getCall(sid);
    } catch (err) {
      if (generation !== pollGeneration) return;
      // Offline for a moment, or a busy API: keep trying. Anything else (signed out, not found) ends the polling.
      if (err instanceof VoiceApiError && ['network_error', 'rate_limited', 'unavailable', 'internal_error'].includes(err.code)) {
        pollTimer = setTimeout(tick, POLL_MS);
        return;
      }
      stopPolling();
      showError('Reading the call', err);
      return;
    }
    if (generation !== pollGeneration) return;
    if (!isCallOver(call.status)) {
      showCall(call.sid, call.status);
      pollTimer = setTimeout(tick, POLL_MS);
      return;
    }
    stopPolling();
    showCall(call.sid, call.status, ENDED_BECAUSE[call.status]);
    log(`call ${call.sid} ${call.status}`);
    if (currentCall?.sid === call.sid) currentCall = null;
    if (!busy) refresh();
  };
  pollTimer = setTimeout(tick, POLL_MS);
}

function refresh() {
  const signedIn = accessToken !== '';
  $('log-out').disabled = !signedIn;
  $('open-session').disabled = !signedIn;
  $('call').disabled = !signedIn;
  $('hangup').disabled = !signedIn || currentCall === null;
}

/** Forgets the session token on this page. */
function forget() {
  stopPolling();
  accessToken = '';
  currentCall = null;
  $('signed-in-as').textContent = 'Not signed in.';
  $('session-state').textContent = 'No voice session.';
  refresh();
}

/** Runs one API action with the buttons disabled, so a double click cannot send it twice. */
async function run(what, action) {
  const buttons = [...document.querySelectorAll('button')];
  const before = buttons.map((b) => b.disabled);
  buttons.forEach((b) => (b.disabled = true));
  busy = true;
  try {
    await action();
  } catch (err) {
    showError(what, err);
  } finally {
    busy = false;
    buttons.forEach((b, i) => (b.disabled = before[i]));
    refresh();
  }
}

$('sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('access-token').value.trim();
  if (!token) return;
  accessToken = token;
  $('access-token').value = '';
  const { sub, exp } = claimsOf(token);
  const until = typeof exp === 'number' ? ` until ${new Date(exp * 1000).toLocaleTimeString()}` : '';
  $('signed-in-as').textContent = `Signed in as ${sub ?? 'an unknown user'}${until}.`;
  showStatus('Signed in.');
  refresh();
});

// Logout as a real frontend does it on Supabase sign-out: end the voice session first (it needs the token),
// then forget the token, also when the server could not be told (the voice session then expires by itself).
$('log-out').addEventListener('click', () =>
  run('Logging out', async () => {
    try {
      await voice.closeSession();
    } finally {
      forget();
    }
    showStatus('Logged out: the voice session has ended.');
    log('voice session closed');
  }),
);

$('open-session').addEventListener('click', () =>
  run('Opening the voice session', async () => {
    const session = await voice.openSession();
    $('session-state').textContent = `Voice session active until ${new Date(session.expiresAt).toLocaleTimeString()}.`;
    showStatus('Voice session open.');
    log('voice session open');
  }),
);

$('call-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const to = $('to').value.trim();
  // One key per call attempt: a retried request returns the same call instead of dialling twice.
  const idempotencyKey = crypto.randomUUID();
  void run('Calling', async () => {
    currentCall = await voice.call(to, { idempotencyKey });
    showCall(currentCall.sid, currentCall.status);
    showStatus(`Calling ${to}.`);
    log(`call ${currentCall.sid} ${currentCall.status}`);
    startPolling(currentCall.sid);
  });
});

$('hangup').addEventListener('click', () =>
  run('Hanging up', async () => {
    const sid = currentCall.sid;
    // No poll may show the call as live after this: its answer could cross the hangup.
    stopPolling();
    let ended;
    try {
      ended = await voice.hangup(sid);
    } catch (err) {
      if (currentCall?.sid === sid) startPolling(sid);
      throw err;
    }
    currentCall = null;
    showCall(ended.sid, ended.status);
    showStatus('Call ended.');
    log(`call ${ended.sid} ${ended.status}`);
  }),
);

refresh();
