package sqlite

import "sync"

// unverified remembers users known to have no verification session, so that the
// verification signal of most decisions costs no read transaction (it was a tenth of the
// embedded default's CPU per decision). It caches only absence, and only this process
// creates sessions in the embedded store: CreateVerification forgets the user once its
// transaction is over, and gen orders a lookup against a creation that raced with it, so a
// lookup that began before a creation never caches the absence afterwards. A second
// process creating sessions in the same file (two `verdict serve` on one data directory,
// which is not supported) would go unseen here until restart; the signal would then say
// "none", the stricter answer.
type unverified struct {
	mu    sync.Mutex
	gen   uint64
	users map[string]struct{}
}

// unverifiedMax bounds the cache; it is emptied when full.
const unverifiedMax = 1 << 20

func (u *unverified) has(user string) (bool, uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.users[user]
	return ok, u.gen
}

// add caches user's absence as seen by a lookup that started at generation gen.
func (u *unverified) add(user string, gen uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if gen != u.gen {
		return // a session was created meanwhile: the lookup may predate it
	}
	if u.users == nil || len(u.users) >= unverifiedMax {
		u.users = make(map[string]struct{})
	}
	u.users[user] = struct{}{}
}

// forget drops user after a session of theirs may have been created.
func (u *unverified) forget(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gen++
	delete(u.users, user)
}
