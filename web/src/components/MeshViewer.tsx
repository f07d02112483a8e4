// A scan or design in 3D: the file is fetched through a signed link (as bytes, never cached),
// parsed by three.js and shown with orbit controls. three.js is loaded only when a mesh is shown.

import { useEffect, useRef, useState } from 'preact/hooks';
import { formatSize } from '../domain';
import { fetchFile } from '../files/links';
import type { Viewer } from '../files/mesh';

/** Above this, ask before downloading the whole file into the page. */
const CONFIRM_ABOVE = 150 * 1000 * 1000;

interface Props {
  fileId: string;
  name: string;
  size: number;
  contentType: string;
  /** Shown above the canvas for context (e.g. in an approval). */
  compact?: boolean;
}

type Phase = { at: 'confirm' } | { at: 'loading'; received: number } | { at: 'ready' } | { at: 'error'; message: string };

export function MeshViewer({ fileId, name, size, contentType, compact }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const viewer = useRef<Viewer | null>(null);
  const [phase, setPhase] = useState<Phase>(size > CONFIRM_ABOVE ? { at: 'confirm' } : { at: 'loading', received: 0 });
  const [stats, setStats] = useState<Viewer['stats'] | null>(null);
  // Whether to fetch and show: at once, or once confirmed for a very large file. (The viewer
  // lives as long as this stays true, whatever the phase shown.)
  const [go, setGo] = useState(size <= CONFIRM_ABOVE);

  useEffect(() => {
    if (!go) return;
    setPhase({ at: 'loading', received: 0 });
    const abort = new AbortController();
    let done = false;
    (async () => {
      try {
        const [mesh, buf] = await Promise.all([
          import('../files/mesh'),
          fetchFile(fileId, (received) => !done && setPhase({ at: 'loading', received }), abort.signal),
        ]);
        const format = mesh.formatOf(contentType);
        if (!format) throw new Error('This file type has no 3D preview.');
        if (abort.signal.aborted || !canvas.current) return;
        let v: Viewer;
        try {
          v = mesh.show(canvas.current, mesh.parse(buf, format));
        } catch (e) {
          if (e instanceof Error && /WebGL/i.test(e.message)) throw new Error('The 3D preview needs WebGL, which this browser has turned off. Download the file to view it.');
          throw e;
        }
        viewer.current = v;
        setStats(v.stats);
        done = true;
        setPhase({ at: 'ready' });
      } catch (e) {
        if (abort.signal.aborted) return;
        done = true;
        setPhase({ at: 'error', message: e instanceof Error ? e.message : 'The preview failed.' });
      }
    })();
    return () => {
      abort.abort();
      viewer.current?.dispose();
      viewer.current = null;
    };
  }, [fileId, go]);

  return (
    <figure class={`mesh-viewer${compact ? ' mesh-compact' : ''}`} data-testid="mesh-viewer" data-state={phase.at}>
      {phase.at === 'confirm' && (
        <div class="mesh-placeholder">
          <p>
            {name} is {formatSize(size)}: the preview downloads all of it.
          </p>
          <button type="button" class="btn" onClick={() => setGo(true)}>
            Show in 3D
          </button>
        </div>
      )}
      {phase.at === 'loading' && (
        <div class="mesh-placeholder" role="status">
          Loading the 3D preview… {size ? `${Math.floor((phase.received / size) * 100)}%` : ''}
        </div>
      )}
      {phase.at === 'error' && (
        <div class="mesh-placeholder error" role="alert">
          {phase.message}
        </div>
      )}
      <canvas
        ref={canvas}
        class="mesh-canvas"
        hidden={phase.at !== 'ready'}
        role="img"
        tabIndex={0}
        aria-label={`3D preview of ${name}. Drag to rotate, pinch or scroll to zoom, right-drag to pan.`}
      />
      {phase.at === 'ready' && (
        <figcaption class="mesh-caption muted small">
          <span>
            {/* STL and PLY carry no unit; dental CAD writes millimetres. */}
            {stats && `${stats.triangles.toLocaleString()} triangles · ${stats.size.map((d) => d.toFixed(1)).join(' × ')} mm`}
          </span>
          <button type="button" class="link" onClick={() => viewer.current?.resetView()}>
            Reset view
          </button>
        </figcaption>
      )}
    </figure>
  );
}
