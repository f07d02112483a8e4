// The page's single realtime client, wired to the session: it reauthenticates through the
// session's refresh and signs out when the server revokes the session.

import { RealtimeClient } from './realtime';
import { endSession, onSignOut, refresh } from './session';
import { forgetRooms } from './state/caseRoom';
import { resetInbox } from './state/inbox';
import { reset as forgetPeople } from './state/people';

let attemptStartedAt = Date.now();

export const realtime = new RealtimeClient({
  url: () => {
    attemptStartedAt = Date.now();
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/ws`;
  },
  reauthenticate: () => refresh(attemptStartedAt),
  onRevoked: () => endSession('Your session was ended (signed out elsewhere, or by an administrator).', true),
});

onSignOut(() => {
  realtime.stop();
  resetInbox();
  forgetRooms();
  forgetPeople();
});
