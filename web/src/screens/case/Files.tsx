// The case's files: uploads (tus, with progress, pause/resume and resume after a reload), and
// the list of files with previews through signed links.

import { useEffect, useState } from 'preact/hooks';
import { FilePreview } from '../../components/FilePreview';
import {
  defaultKind,
  FILE_KINDS,
  formatSize,
  formatTime,
  KIND_ACCEPTS,
  KIND_LABEL,
  labSide,
  mayAddFiles,
  previewKind,
  type CaseAccess,
  type FileKind,
  type Me,
} from '../../domain';
import { download } from '../../files/links';
import {
  cancel,
  describeProgress,
  discardInterrupted,
  dismiss,
  interrupted,
  pause,
  receivedOf,
  resume,
  startUpload,
  uploads,
  type Interrupted,
  type UploadItem,
} from '../../files/uploads';
import { search } from '../../router';
import type { CaseFile } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';

export const mayUpload = (a: CaseAccess) => mayAddFiles(a);

export function Files({ r, user, access }: { r: CaseRoom; user: Me; access: CaseAccess }) {
  r.rev.value;
  const s = r.state!;
  const files = Object.values(s.files).sort((a, b) => b.seq - a.seq);
  const mine = uploads.value.filter((u) => u.caseId === r.id);
  const wanted = new URLSearchParams(search.value).get('file');
  const [open, setOpen] = useState<string | null>(wanted);
  useEffect(() => {
    if (wanted) setOpen(wanted);
  }, [wanted]);

  return (
    <div class="files" data-testid="files">
      <div class="panel-head">
        <h2>Files</h2>
        <span class="muted small">{files.length ? `${files.length} file${files.length === 1 ? '' : 's'}` : ''}</span>
      </div>
      {mayUpload(access) && <UploadForm r={r} side={labSide(access) ? 'lab' : 'clinic'} />}
      <InterruptedUploads r={r} />
      {mine.length > 0 && (
        <ul class="plain uploads" aria-label="Uploads">
          {mine.map((u) => (
            <UploadRow key={u.key} u={u} />
          ))}
        </ul>
      )}
      {files.length === 0 ? (
        <p class="muted">No files yet. Scans, photos, designs, voice notes and documents of this case appear here.</p>
      ) : (
        <ul class="plain file-list" aria-label="Files of the case">
          {files.map((f) => (
            <FileRow key={f.id} f={f} r={r} me={user.id} open={open === f.id} toggle={() => setOpen(open === f.id ? null : f.id)} />
          ))}
        </ul>
      )}
    </div>
  );
}

function UploadForm({ r, side }: { r: CaseRoom; side: 'clinic' | 'lab' }) {
  const [file, setFile] = useState<File | null>(null);
  const [kind, setKind] = useState<FileKind>('scan');
  const [inputKey, setInputKey] = useState(0);

  function pick(e: Event) {
    const f = (e.currentTarget as HTMLInputElement).files?.[0] ?? null;
    setFile(f);
    if (f) setKind(defaultKind(f.name, f.type, side));
  }

  function submit(e: Event) {
    e.preventDefault();
    if (!file) return;
    void startUpload(file, { caseId: r.id, kind });
    setFile(null);
    setInputKey((k) => k + 1); // a fresh input: the same file can be picked again
  }

  return (
    <form class="upload-form" onSubmit={submit}>
      <label class="field">
        <span>Add a file</span>
        <input key={inputKey} type="file" onChange={pick} aria-describedby="upload-help" />
      </label>
      {file && (
        <div class="upload-choice">
          <label class="field field-inline">
            <span>Kind</span>
            <select value={kind} onChange={(e) => setKind(e.currentTarget.value as FileKind)}>
              {FILE_KINDS.map((k) => (
                <option value={k}>{KIND_LABEL[k]}</option>
              ))}
            </select>
          </label>
          <button type="submit" class="btn btn-primary">
            Upload {formatSize(file.size)}
          </button>
        </div>
      )}
      <small id="upload-help" class="muted">
        {file ? `A ${KIND_LABEL[kind].toLowerCase()} must be ${KIND_ACCEPTS[kind]}; the server checks the content.` : 'Scans and designs (STL, PLY, OBJ), photos, voice notes, PDFs. Large scans can be paused and resumed.'}
      </small>
    </form>
  );
}

function UploadRow({ u }: { u: UploadItem }) {
  const label = u.state === 'done' ? 'Added to the case' : u.state === 'checking' ? 'Checking the file…' : u.state === 'paused' ? 'Paused' : u.state === 'failed' ? 'Not uploaded' : 'Uploading';
  return (
    <li class={`upload upload-${u.state}`} data-testid="upload" data-state={u.state}>
      <div class="upload-head">
        <strong class="upload-name" dir="auto">{u.name}</strong>
        <span class="badge">{KIND_LABEL[u.kind]}</span>
      </div>
      <progress max={u.size || 1} value={u.state === 'done' ? u.size : u.sent} aria-label={`Upload of ${u.name}`} aria-valuetext={describeProgress(u)} />
      <div class="upload-meta small">
        <span role="status">
          {label} · {describeProgress(u)}
          {u.resumedAt ? ` · resumed at ${formatSize(u.resumedAt)}` : ''}
        </span>
        <span class="actions">
          {u.state === 'uploading' && (
            <button type="button" class="btn btn-small" onClick={() => pause(u.key)}>
              Pause
            </button>
          )}
          {u.state === 'paused' && (
            <button type="button" class="btn btn-small" onClick={() => resume(u.key)}>
              Resume
            </button>
          )}
          {(u.state === 'uploading' || u.state === 'paused') && (
            <button type="button" class="btn btn-small btn-quiet" onClick={() => cancel(u.key)}>
              Cancel
            </button>
          )}
          {(u.state === 'done' || u.state === 'failed') && (
            <button type="button" class="btn btn-small btn-quiet" onClick={() => dismiss(u.key)} aria-label={`Dismiss ${u.name}`}>
              Dismiss
            </button>
          )}
        </span>
      </div>
      {u.error && (
        <p class={u.state === 'failed' ? 'error small' : 'warn small'} role="alert">
          {u.error}
        </p>
      )}
    </li>
  );
}

/** Uploads this tab started before a reload: picking the same file again continues them. */
function InterruptedUploads({ r }: { r: CaseRoom }) {
  uploads.value; // re-read when uploads start or finish
  const list = interrupted(r.id);
  if (!list.length) return null;
  return (
    <ul class="plain uploads" aria-label="Interrupted uploads">
      {list.map((e) => (
        <InterruptedRow key={e.storageKey} e={e} r={r} />
      ))}
    </ul>
  );
}

function InterruptedRow({ e, r }: { e: Interrupted; r: CaseRoom }) {
  const [received, setReceived] = useState<number | null | undefined>(undefined);
  const [gone, setGone] = useState(false);
  useEffect(() => {
    receivedOf(e).then(
      (n) => (n === null ? setGone(true) : setReceived(n)),
      () => setReceived(undefined),
    );
  }, [e.storageKey]);
  if (gone) return null;
  const kind = e.kind ?? 'scan';
  return (
    <li class="upload upload-interrupted" data-testid="interrupted-upload">
      <p class="small">
        An upload ({KIND_LABEL[kind].toLowerCase()}, {e.size ? formatSize(e.size) : 'unknown size'}
        {received !== undefined && received !== null && e.size ? `, ${Math.floor((received / e.size) * 100)}% received` : ''}) was interrupted. Choose the same file
        again to continue where it stopped.
      </p>
      <div class="actions">
        <label class="btn btn-small file-button">
          Choose the file again
          <input
            type="file"
            class="visually-hidden"
            onChange={(ev) => {
              const f = (ev.currentTarget as HTMLInputElement).files?.[0];
              if (f) void startUpload(f, { caseId: r.id, kind });
            }}
          />
        </label>
        <button type="button" class="btn btn-small btn-quiet" onClick={() => void discardInterrupted(e).then(() => setGone(true))}>
          Discard
        </button>
      </div>
    </li>
  );
}

function FileRow({ f, r, me, open, toggle }: { f: CaseFile; r: CaseRoom; me: string; open: boolean; toggle: () => void }) {
  const preview = previewKind(f.contentType);
  const inlineAudio = preview === 'audio';
  return (
    <li class={`file file-${f.kind}`} data-file-id={f.id} data-testid="file">
      <div class="file-head">
        <span class={`badge kind-${f.kind}`}>{KIND_LABEL[f.kind]}</span>
        <strong class="file-name" dir="auto">{f.name}</strong>
      </div>
      <div class="file-meta muted small">
        {formatSize(f.size)} · <bdi>{r.name(f.by, me)}</bdi> · {formatTime(f.at)} ·{' '}
        <code title={`SHA-256 ${f.sha256}`}>{f.sha256.slice(0, 10)}</code>
      </div>
      {inlineAudio && <FilePreview file={f} />}
      {f.transcript && <p class="transcript small">“{f.transcript}”</p>}
      <div class="actions">
        {preview !== 'none' && !inlineAudio && (
          <button type="button" class="btn btn-small" aria-expanded={open ? 'true' : 'false'} onClick={toggle}>
            {open ? 'Hide preview' : preview === 'mesh' ? 'Show in 3D' : preview === 'pdf' ? 'Open…' : 'Show'}
          </button>
        )}
        <button type="button" class="btn btn-small btn-quiet" onClick={() => void download(f.id, f.name)}>
          Download
        </button>
      </div>
      {open && !inlineAudio && <FilePreview file={f} />}
    </li>
  );
}
