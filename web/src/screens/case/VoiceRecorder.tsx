// Voice notes recorded in the browser (MediaRecorder: WebM/Opus where supported, else MP4/AAC),
// uploaded as `voice_note` through the same tus path as every file. The recording lives in
// memory until it is uploaded; nothing is written to the device.

import { useEffect, useRef, useState } from 'preact/hooks';
import { startUpload } from '../../files/uploads';
import type { CaseRoom } from '../../state/caseRoom';

/** A voice note is a short message; longer recordings stop by themselves. */
const MAX_SECONDS = 5 * 60;
const TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4;codecs=mp4a.40.2', 'audio/mp4', 'audio/ogg;codecs=opus'];

export function recordingSupported(): boolean {
  return typeof MediaRecorder === 'function' && !!navigator.mediaDevices?.getUserMedia;
}

function pickType(): string {
  for (const t of TYPES) if (MediaRecorder.isTypeSupported(t)) return t;
  return '';
}

function extension(type: string): string {
  if (type.startsWith('audio/mp4')) return 'm4a';
  if (type.startsWith('audio/ogg')) return 'ogg';
  return 'webm';
}

type Phase = 'idle' | 'asking' | 'recording' | 'sending';

export function VoiceRecorder({ r }: { r: CaseRoom }) {
  const [phase, setPhase] = useState<Phase>('idle');
  const [seconds, setSeconds] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const recorder = useRef<MediaRecorder | null>(null);
  const stream = useRef<MediaStream | null>(null);
  const chunks = useRef<Blob[]>([]);
  const send = useRef(true);
  const timer = useRef<ReturnType<typeof setInterval> | undefined>(undefined);

  const stopTracks = () => {
    stream.current?.getTracks().forEach((t) => t.stop());
    stream.current = null;
    clearInterval(timer.current);
  };
  useEffect(() => () => {
    send.current = false;
    if (recorder.current?.state === 'recording') recorder.current.stop();
    stopTracks();
  }, []);

  async function start() {
    setError(null);
    setPhase('asking');
    try {
      stream.current = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (e) {
      setPhase('idle');
      setError(
        e instanceof DOMException && e.name === 'NotAllowedError'
          ? 'The microphone is blocked for this site. Allow it in the browser to record voice notes.'
          : 'No microphone could be opened.',
      );
      return;
    }
    const type = pickType();
    const rec = new MediaRecorder(stream.current, type ? { mimeType: type, audioBitsPerSecond: 48_000 } : undefined);
    chunks.current = [];
    send.current = true;
    rec.ondataavailable = (e) => e.data.size && chunks.current.push(e.data);
    rec.onstop = () => {
      stopTracks();
      const mime = (rec.mimeType || type || 'audio/webm').split(';')[0];
      const blob = new Blob(chunks.current, { type: mime });
      chunks.current = [];
      if (!send.current || blob.size === 0) {
        setPhase('idle');
        return;
      }
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
      const file = new File([blob], `voice-note-${stamp}.${extension(mime)}`, { type: mime });
      setPhase('sending');
      void startUpload(file, { caseId: r.id, kind: 'voice_note', resumable: false }).finally(() => setPhase('idle'));
    };
    recorder.current = rec;
    rec.start(1000);
    setSeconds(0);
    setPhase('recording');
    const began = Date.now();
    timer.current = setInterval(() => {
      const s = Math.floor((Date.now() - began) / 1000);
      setSeconds(s);
      if (s >= MAX_SECONDS) stop(true);
    }, 250);
  }

  function stop(keep: boolean) {
    send.current = keep;
    if (recorder.current?.state === 'recording') recorder.current.stop();
    else stopTracks();
  }

  const clock = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  return (
    <div class="recorder">
      {phase === 'recording' ? (
        <>
          <span class="rec-dot" aria-hidden="true" />
          <span role="timer" aria-live="off" class="rec-clock">
            Recording {clock}
          </span>
          <button type="button" class="btn btn-small btn-primary" onClick={() => stop(true)}>
            Stop and send
          </button>
          <button type="button" class="btn btn-small btn-quiet" onClick={() => stop(false)}>
            Discard
          </button>
        </>
      ) : (
        <button type="button" class="btn btn-small" disabled={phase !== 'idle'} onClick={() => void start()}>
          {phase === 'asking' ? 'Opening the microphone…' : phase === 'sending' ? 'Sending…' : 'Record a voice note'}
        </button>
      )}
      {error && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
