#!/usr/bin/env node
// The Node `commerceml-parser` peer: node parse.js FILE [import|offers]
// Streams FILE through the parser (import.xml → CommerceMlImportParser, offers.xml →
// CommerceMlOffersParser; detected from the content unless given), counts entities and prints
// one JSON line: counts, bytes, seconds, MB/s and peak RSS (MiB).
'use strict';
const fs = require('fs');
const {CommerceMlImportParser, CommerceMlOffersParser} = require('commerceml-parser');

function detect(file) {
  // Look for the first top-level section in the first 16 MiB.
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(16 << 20);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  fs.closeSync(fd);
  const head = buf.subarray(0, n).toString('utf8');
  const cat = head.search(/<(\w+:)?Каталог[\s>]/);
  const pkg = head.search(/<(\w+:)?(Изменения)?ПакетПредложений[\s>]/);
  if (cat >= 0 && (pkg < 0 || cat < pkg)) return 'import';
  if (pkg >= 0) return 'offers';
  return /offers|prices|rests/i.test(file) ? 'offers' : 'import';
}

(async () => {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node parse.js FILE [import|offers]');
    process.exit(2);
  }
  const kind = process.argv[3] || detect(file);
  const bytes = fs.statSync(file).size;
  const c = {groups: 0, properties: 0, goods: 0, images: 0, offers: 0, warehouses: 0, price_types: 0};
  const t0 = process.hrtime.bigint();
  let p;
  if (kind === 'import') {
    p = new CommerceMlImportParser();
    p.onClassifierGroup(() => c.groups++);
    p.onClassifierProperty(() => c.properties++);
    p.onProduct(pr => { c.goods++; c.images += (pr.images || []).length; });
  } else {
    p = new CommerceMlOffersParser();
    p.onOffersPackage(op => { c.price_types += (op.priceTypes || []).length; });
    p.onWarehouse(() => c.warehouses++);
    p.onOffer(() => c.offers++);
  }
  await p.parse(fs.createReadStream(file, {highWaterMark: 1 << 20}));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({
    peer: 'commerceml-parser@' + require('commerceml-parser/package.json').version,
    kind, file, bytes, ...c,
    seconds: Math.round(seconds * 1000) / 1000,
    mb_per_s: Math.round(bytes / 1e6 / seconds * 10) / 10,
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
  }));
})().catch(e => { console.error(e); process.exit(1); });
