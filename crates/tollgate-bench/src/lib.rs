//! Tollgate's benchmark programs (`src/bin`), run by the scripts in
//! `scripts/`: `bench-http.sh` (`http_bench`), `bench-credits.sh`
//! (`credits_bench`) and `bench-issuer.sh` (`issuer_bench`). Each starts its
//! servers on 127.0.0.1 and drives them with `wrk`.
