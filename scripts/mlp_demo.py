"""Train a 2-layer MLP to fit y = x0 * x1 on random points; print the loss every 20 steps."""

import tinygpt as tg

tg.backend.manual_seed(0)
x = tg.Tensor(tg.backend.Generator(1).uniform((64, 2), -1.0, 1.0))  # (N, 2)
y = x[:, 0:1] * x[:, 1:2]  # (N, 1)
model = tg.Sequential(tg.Dense(2, 16), tg.Tanh(), tg.Dense(16, 1))
optimizer = tg.optim.Adam(model.parameters(), lr=0.05)
loss_fn = tg.MSELoss()
for step in range(101):
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        print(f"step {step:3d} loss {loss.item():.6f}")
