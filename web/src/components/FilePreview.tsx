// Previews of a case's files, all through signed links: photos as images, scans and designs in
// 3D, voice notes as audio players, PDFs in a new tab. Links are asked for when a preview is
// shown, never ahead for a whole list.

import { useEffect, useRef, useState } from 'preact/hooks';
import { previewKind } from '../domain';
import { download, fileLink } from '../files/links';
import type { CaseFile } from '../state/caseFold';
import { errorText } from './CaseBits';
import { MeshViewer } from './MeshViewer';

export function FilePreview({ file, compact }: { file: CaseFile; compact?: boolean }) {
  switch (previewKind(file.contentType)) {
    case 'mesh':
      return <MeshViewer fileId={file.id} name={file.name} size={file.size} contentType={file.contentType} compact={compact} />;
    case 'image':
      return <ImagePreview file={file} />;
    case 'audio':
      return <AudioPlayer file={file} />;
    case 'pdf':
      return <PdfOpener file={file} />;
    default:
      return (
        <p class="muted small">
          This browser cannot show {file.contentType === 'image/heic' ? 'HEIC photos' : 'this file'}.{' '}
          <button type="button" class="link" onClick={() => void download(file.id, file.name)}>
            Download it
          </button>
        </p>
      );
  }
}

/** A link for `fileId`, asked for once the element is near the viewport; renewed on `renew()`
 * (an expired link: media elements re-request ranges later). */
function useLink(fileId: string, inline: boolean, lazyRef?: { current: Element | null }) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [visible, setVisible] = useState(!lazyRef);
  const renewals = useRef(0);

  useEffect(() => {
    if (visible || !lazyRef?.current) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        setVisible(true);
        io.disconnect();
      }
    }, { rootMargin: '200px' });
    io.observe(lazyRef.current);
    return () => io.disconnect();
  }, [visible]);

  useEffect(() => {
    if (!visible) return;
    let live = true;
    fileLink(fileId, { inline }).then(
      (u) => live && setUrl(u),
      (e) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, [fileId, visible]);

  async function renew(): Promise<string | null> {
    if (renewals.current++ > 2) return null;
    try {
      const u = await fileLink(fileId, { inline, fresh: true });
      setUrl(u);
      return u;
    } catch (e) {
      setError(errorText(e));
      return null;
    }
  }
  return { url, error, renew };
}

function ImagePreview({ file }: { file: CaseFile }) {
  const { url, error, renew } = useLink(file.id, true);
  if (error) return <p class="error small">{error}</p>;
  return (
    <figure class="image-preview">
      {url ? <img src={url} alt={file.name} decoding="async" onError={() => void renew()} /> : <div class="mesh-placeholder" role="status">Loading the photo…</div>}
    </figure>
  );
}

/** A voice note (or any audio file): the native player, so keyboard and screen readers work. */
export function AudioPlayer({ file }: { file: CaseFile }) {
  const holder = useRef<HTMLDivElement>(null);
  const audio = useRef<HTMLAudioElement>(null);
  const { url, error, renew } = useLink(file.id, true, holder);

  async function onError() {
    // Most likely the link expired (5 minutes) and the player asked for another range.
    const at = audio.current?.currentTime ?? 0;
    const next = await renew();
    if (next && audio.current) {
      audio.current.src = next;
      audio.current.currentTime = at;
    }
  }

  return (
    <div class="audio-player" ref={holder} data-testid="audio-player">
      {error ? (
        <p class="error small">{error}</p>
      ) : url ? (
        <audio ref={audio} controls preload="metadata" src={url} onError={() => void onError()} aria-label={`Voice note ${file.name}`} />
      ) : (
        <span class="muted small">Loading the recording…</span>
      )}
    </div>
  );
}

/** PDFs open in a new tab: the app's CSP (and the server's `frame-ancestors 'none'` on the
 * download) rules out showing them in an iframe or `<object>` within the page. */
function PdfOpener({ file }: { file: CaseFile }) {
  const [blocked, setBlocked] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  async function open() {
    setError(null);
    try {
      const url = await fileLink(file.id, { inline: true, fresh: true });
      const w = window.open(url, '_blank');
      if (w) w.opener = null; // the new tab gets no handle on this page
      else setBlocked(url); // a blocked pop-up leaves a link to click

    } catch (e) {
      setError(errorText(e));
    }
  }
  return (
    <div class="pdf-open">
      <button type="button" class="btn btn-small" onClick={() => void open()}>
        Open the PDF in a new tab
      </button>
      {blocked && (
        <a href={blocked} target="_blank" rel="noopener" class="small">
          Open {file.name}
        </a>
      )}
      {error && <p class="error small">{error}</p>}
    </div>
  );
}
