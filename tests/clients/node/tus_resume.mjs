// tus-js-client (Node.js) against a real Articula server: a 200 MB binary STL, an upload aborted
// in the middle of a PATCH once 30% has been sent, and a new Upload that finds the first one in
// tus-js-client's URL storage, asks the server its offset (HEAD) and finishes. No checksum here
// (tus-js-client sends none), so the server keeps the bytes of the aborted PATCH that reached it.
// Then the file must be listed with the right size and SHA-256 and download (signed link) to the
// same SHA-256.
//
// Run by tests/clients/run.sh, which starts the server and passes TUSTEST_BASE_URL, TUSTEST_CA
// (the server's self-signed certificate, the only one trusted), TUSTEST_TOKEN, TUSTEST_CASE_ID and
// TUSTEST_WORK_DIR.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import https from 'node:https'
import { join } from 'node:path'
import { DefaultHttpStack, FileUrlStorage, Upload } from 'tus-js-client'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set (run tests/clients/run.sh)`)
  return v
}
const BASE = env('TUSTEST_BASE_URL').replace(/\/$/, '')
const CA = readFileSync(env('TUSTEST_CA'))
const TOKEN = env('TUSTEST_TOKEN')
const CASE_ID = env('TUSTEST_CASE_ID')
const WORK = env('TUSTEST_WORK_DIR')
const TRIANGLES = Number(process.env.TUSTEST_TRIANGLES ?? 4_000_000) // 84 + 50·n bytes ≈ 200 MB
const CHUNK = 16 * 1024 * 1024
const AUTH = { Authorization: `Bearer ${TOKEN}` }
// Every request trusts exactly the server's certificate (`ca` replaces the default CAs).
const agent = new https.Agent({ ca: CA, keepAlive: false })

const seconds = (t) => ((performance.now() - t) / 1000).toFixed(1)

// A binary STL of `triangles` triangles (84 + 50·n bytes), written in blocks. Coordinates are
// random finite floats (|x| < 16), so a byte put at a wrong offset changes the SHA-256.
async function writeStl(path, triangles) {
  const sha = createHash('sha256')
  const f = await open(path, 'w')
  try {
    const head = Buffer.alloc(84, ' ')
    head.write('Articula tus-js-client resume test (binary STL)')
    head.writeUInt32LE(triangles, 80)
    await f.write(head)
    sha.update(head)
    for (let left = triangles; left > 0; ) {
      const n = Math.min(left, 100_000)
      const block = randomBytes(50 * n)
      for (let t = 0; t < n; t++) {
        const base = 50 * t
        for (let k = 0; k < 12; k++) {
          const i = base + 4 * k + 3 // the high byte of each little-endian float32
          block[i] = (block[i] & 0x81) | 0x40 // sign kept, exponent 128..131
        }
        block[base + 48] = 0 // attribute byte count
        block[base + 49] = 0
      }
      await f.write(block)
      sha.update(block)
      left -= n
    }
  } finally {
    await f.close()
  }
  return { size: 84 + 50 * triangles, sha256: sha.digest('hex') }
}

function request(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, agent, headers: { ...AUTH, ...headers } }, (res) => resolve(res))
    req.on('error', reject)
    req.end(body)
  })
}

async function json(method, url) {
  const res = await request(method, url)
  const chunks = []
  for await (const c of res) chunks.push(c)
  const text = Buffer.concat(chunks).toString('utf8')
  assert.equal(res.statusCode, 200, `${method} ${url}: ${res.statusCode} ${text}`)
  return JSON.parse(text)
}

// The server's offset. Right after an abort the server may still hold the upload's lock for the
// moment it needs to notice the dropped request (423): asked again, for at most 30 s.
async function headOffset(url) {
  const deadline = performance.now() + 30_000
  for (;;) {
    const res = await request('HEAD', url, { headers: { 'Tus-Resumable': '1.0.0' } })
    res.resume()
    if (res.statusCode === 423 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50))
      continue
    }
    assert.equal(res.statusCode, 200, `HEAD ${url}: ${res.statusCode} ${JSON.stringify(res.headers)}`)
    assert.equal(res.headers['tus-resumable'], '1.0.0')
    return { offset: Number(res.headers['upload-offset']), length: Number(res.headers['upload-length']) }
  }
}

async function main() {
  const t0 = performance.now()
  const path = join(WORK, 'scan-tusjs.stl')
  const { size, sha256 } = await writeStl(path, TRIANGLES)
  console.log(`file: ${size} bytes (${TRIANGLES} triangles), sha256 ${sha256}, written in ${seconds(t0)} s`)

  const urlStorage = new FileUrlStorage(join(WORK, 'tus-urls.json'))
  const common = {
    endpoint: `${BASE}/api/v1/uploads/`,
    chunkSize: CHUNK,
    headers: AUTH,
    httpStack: new DefaultHttpStack({ agent }),
    metadata: { case_id: CASE_ID, filename: 'scan-tusjs.stl', content_type: 'model/stl', kind: 'scan' },
    urlStorage,
  }

  // 1. Upload, and abort in the middle of a PATCH once 30% has been sent.
  const tUp = performance.now()
  let patches = 0
  const first = await new Promise((resolve, reject) => {
    let done = false
    const upload = new Upload(createReadStream(path), {
      ...common,
      retryDelays: null,
      onBeforeRequest(req) {
        if (req.getMethod() === 'PATCH') patches++
      },
      onProgress(sent, total) {
        if (done || sent < 0.3 * total) return
        done = true
        // The bytes handed to the socket by now, of which the server has those that reached it.
        const at = sent
        upload.abort().then(() => resolve({ upload, at }), reject)
      },
      onSuccess: () => reject(new Error('the upload finished before it was aborted')),
      onError: reject,
    })
    upload.start()
  })
  const uploadUrl = first.upload.url
  assert.ok(uploadUrl, 'no upload URL after the first attempt')
  console.log(`bytes at interruption: ${first.at} sent by the client (PATCH #${patches}), aborted`)

  // 2. The server kept a strict part of the file: more than nothing, less than everything.
  const { offset, length } = await headOffset(uploadUrl)
  console.log(`server offset after the interruption: ${offset} of ${length}`)
  assert.equal(length, size)
  assert.ok(offset > 0 && offset < size, `offset ${offset} is not strictly between 0 and ${size}`)
  assert.ok(offset <= first.at, `the server has ${offset} bytes but only ${first.at} were sent`)

  // 3. A new Upload finds the first in the URL storage and resumes where the server is.
  let resumedAt
  let firstPatchOffset
  let fileId
  let finished
  const done = new Promise((resolve, reject) => {
    finished = { resolve, reject }
  })
  const second = new Upload(createReadStream(path), {
    ...common,
    onSuccess: () => finished.resolve(),
    onError: (e) => finished.reject(e),
    retryDelays: [0, 500, 1000, 2000],
    onBeforeRequest(req) {
      if (req.getMethod() === 'PATCH' && firstPatchOffset === undefined) {
        firstPatchOffset = Number(req.getHeader('Upload-Offset'))
      }
    },
    onAfterResponse(req, res) {
      if (req.getMethod() === 'HEAD' && res.getStatus() === 200) resumedAt = Number(res.getHeader('Upload-Offset'))
      if (req.getMethod() === 'PATCH' && res.getHeader('Articula-File-Id')) fileId = res.getHeader('Articula-File-Id')
    },
  })
  const previous = await second.findPreviousUploads()
  assert.equal(previous.length, 1, `URL storage holds ${previous.length} uploads for this file`)
  assert.equal(previous[0].uploadUrl, uploadUrl)
  second.resumeFromPreviousUpload(previous[0])
  second.start()
  await done
  console.log(`offset reported on resume: ${resumedAt} (first PATCH of the resume at ${firstPatchOffset})`)
  assert.equal(second.url, uploadUrl)
  assert.equal(resumedAt, offset)
  assert.equal(firstPatchOffset, offset)
  const uploadId = uploadUrl.replace(/\/$/, '').split('/').pop()
  assert.equal(fileId, uploadId)
  console.log(`upload: ${seconds(tUp)} s (resumed ${size - resumedAt} bytes)`)

  // 4. The case lists the file with the right size and SHA-256.
  const files = await json('GET', `${BASE}/api/v1/cases/${CASE_ID}/files`)
  const listed = files.filter((f) => f.id === uploadId)
  assert.equal(listed.length, 1, JSON.stringify(files))
  const f = listed[0]
  assert.deepEqual([f.name, f.size, f.sha256, f.kind, f.content_type], ['scan-tusjs.stl', size, sha256, 'scan', 'model/stl'])

  // 5. A signed link downloads the same bytes.
  const tDl = performance.now()
  const { url: link } = await json('POST', `${BASE}/api/v1/files/${uploadId}/link`)
  const res = await request('GET', link)
  assert.equal(res.statusCode, 200, `GET link: ${res.statusCode}`)
  assert.equal(res.headers['content-type'], 'model/stl')
  assert.equal(res.headers['content-length'], String(size))
  const got = createHash('sha256')
  let n = 0
  for await (const c of res) {
    got.update(c)
    n += c.length
  }
  assert.equal(n, size)
  assert.equal(got.digest('hex'), sha256)
  console.log(`download: ${n} bytes, sha256 matches, ${seconds(tDl)} s`)
  console.log(`tus-js-client: ok, total ${seconds(t0)} s`)
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error('FAIL:', e)
    process.exit(1)
  },
)
